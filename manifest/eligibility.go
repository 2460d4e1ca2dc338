package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// RolloutBucket returns a device's place in the rollout order of the
// release at targetPath: the first 8 bytes of SHA-256(targetPath || 0x00
// || rolloutID) as a big-endian integer, modulo FullShare. A wave of share
// s reaches the buckets below s.
//
// The release path is part of the hash so that each release starts on
// other devices: no device is everybody's guinea pig, and no server has
// to keep the order. The 0x00 separator keeps ("a/b", "c") and ("a/", "bc")
// apart: a target path never holds a NUL byte. The modulo's bias is
// below 10^-15 and no one can steer it without choosing the device's ID.
func RolloutBucket(targetPath, rolloutID string) int {
	h := sha256.New()
	h.Write([]byte(targetPath))
	h.Write([]byte{0})
	h.Write([]byte(rolloutID))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % FullShare)
}

// EligibleFrom returns the time from which the device with rolloutID may
// take the release at targetPath: the start plus the offset of the first
// wave whose share covers its bucket. The answer is one instant, so a
// device eligible at t is eligible at every later time. A nil rollout
// (an immediate release) returns the zero time: eligible at any time.
func (r *Rollout) EligibleFrom(targetPath, rolloutID string) time.Time {
	if r == nil {
		return time.Time{}
	}
	bucket := RolloutBucket(targetPath, rolloutID)
	for _, w := range r.Waves {
		if bucket < w.Share {
			return r.Start.Add(w.Offset)
		}
	}
	// Unreachable for a valid rollout, whose last wave has FullShare; a
	// Rollout built by hand without one reaches no device, ever.
	return maxTime
}

// Eligible reports whether the device with rolloutID may take the release
// at targetPath at time t, which must be a trusted time: a lower bound of
// the true time, so that a clock set ahead cannot start a wave early.
func (r *Rollout) Eligible(targetPath, rolloutID string, t time.Time) bool {
	return !t.Before(r.EligibleFrom(targetPath, rolloutID))
}

// CurrentWave returns the index of the last wave that has opened at t
// (its start plus offset is not after t), or -1 before the first. The
// waves' offsets rise, so the waves before it have opened too. A nil
// rollout has no waves: -1.
func (r *Rollout) CurrentWave(t time.Time) int {
	if r == nil {
		return -1
	}
	cur := -1
	for i, w := range r.Waves {
		if !t.Before(r.Start.Add(w.Offset)) {
			cur = i
		}
	}
	return cur
}

// maxTime is later than any time a schedule can name.
var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Add(MaxWaveOffset + time.Second)
