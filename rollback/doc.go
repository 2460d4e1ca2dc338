// Package rollback keeps a device's trusted state: metadata versions,
// security-version floors committed only after an install is confirmed, and
// a trusted clock floor against freeze attacks.
//
// It has no code yet; see the project's issues.
package rollback
