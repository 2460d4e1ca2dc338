// Package delta makes and applies bsdiff-style binary deltas: fast
// generation on the server, streaming bounded-memory application on the
// device. It imports nothing else of otaseal and knows nothing about TUF.
//
// It has no code yet; see the project's issues.
package delta
