// Package sign is the server side of trust: role-separated signing keys and
// thresholds, k-of-n offline signing, root rotation, and the publishing
// workflow of an update server.
//
// It has no code yet; see the project's issues.
package sign
