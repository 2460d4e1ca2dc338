// Package verify is the device side of otaseal: the TUF client workflow,
// firmware selection for this device, and the streaming verified install of
// a firmware image or delta.
//
// It has no code yet; see the project's issues.
package verify
