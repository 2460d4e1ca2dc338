package sign

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/otaseal/otaseal/manifest"
)

// ErrSharedKey reports a key listed for an offline role (root, targets)
// and for an online role (snapshot, timestamp). A *SharedKeyError carries
// the evidence.
var ErrSharedKey = errors.New("sign: an offline role shares a key with an online role")

// SharedKeyError names a key that an offline and an online role share.
type SharedKeyError struct {
	KeyID   string
	Offline []string // root and/or targets
	Online  []string // snapshot and/or timestamp
}

func (e *SharedKeyError) Error() string {
	return fmt.Sprintf("%v: key %s is a key of %s and of %s; an update server holds the online keys, so whoever steals it could then sign %s",
		ErrSharedKey, shortID(e.KeyID), strings.Join(e.Offline, " and "), strings.Join(e.Online, " and "), strings.Join(e.Offline, " and "))
}

func (e *SharedKeyError) Unwrap() error { return ErrSharedKey }

// CheckRoleSeparation refuses a root spec in which a key of root or
// targets is also a key of snapshot or timestamp, returning a
// *SharedKeyError (ErrSharedKey) for the first such key.
//
// The online keys live on the update server, which re-signs freshness
// metadata around the clock; the offline keys decide what firmware exists
// and who holds the keys. One key in both places gives a stolen server the
// power to publish firmware or rotate the root. Keys are compared by the
// public key they hold, so one key under two spellings is still one key.
//
// The release tool calls this at init and rotate, and the update server at
// start; both refuse unless the operator passes an explicit override (a
// test or lab repository may knowingly use one key for everything).
// Sharing a key between root and targets, both offline, is allowed.
func CheckRoleSeparation(spec RootSpec) error {
	offline := []string{manifest.RoleRoot, manifest.RoleTargets}
	online := []string{manifest.RoleSnapshot, manifest.RoleTimestamp}
	for _, on := range online {
		for _, onKey := range spec.Roles[on].Keys {
			e := &SharedKeyError{}
			for _, off := range offline {
				for _, offKey := range spec.Roles[off].Keys {
					if samePublicKey(onKey, offKey) && !slices.Contains(e.Offline, off) {
						e.Offline = append(e.Offline, off)
					}
				}
			}
			if len(e.Offline) == 0 {
				continue
			}
			id, err := KeyID(onKey)
			if err != nil {
				return err
			}
			e.KeyID = id
			for _, other := range online {
				for _, k := range spec.Roles[other].Keys {
					if samePublicKey(onKey, k) && !slices.Contains(e.Online, other) {
						e.Online = append(e.Online, other)
					}
				}
			}
			return e
		}
	}
	return nil
}
