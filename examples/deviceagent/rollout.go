package main

import (
	"errors"
	"time"

	"github.com/otaseal/otaseal/verify"
)

// logDecision logs why a release was not installed: each reason Check
// joined or Update.Notices holds gets its own line. A withdrawn release
// the device runs is a security notice, at WARN: the fleet runs a release
// its publisher took back until a newer one reaches it.
func (a *agent) logDecision(err error) {
	var (
		notEligible *verify.NotEligibleError
		withdrawn   *verify.WithdrawnError
		paused      *verify.PausedError
	)
	if reasons, ok := joinedReasons(err); ok {
		for _, e := range reasons {
			a.logDecision(e)
		}
		return
	}
	switch {
	case errors.As(err, &notEligible):
		a.log.Info("not yet eligible: the release's staged rollout has not reached this device",
			"release", notEligible.Version, "until", notEligible.Until.UTC(), "rollout_id", a.state.RolloutID())
		if a.nextWave.IsZero() || notEligible.Until.Before(a.nextWave) {
			a.nextWave = notEligible.Until
		}
	case errors.As(err, &paused):
		// The online rollout control holds the release back (a health
		// rule on the update server, or an operator): wait for a resume.
		a.log.Info("held back by the rollout control", "release", paused.Version, "state", paused.State, "reason", paused.Reason)
	case errors.As(err, &withdrawn) && withdrawn.Installed:
		a.log.Warn("security notice: the running release was withdrawn by its publisher; moving to the next newer release as soon as one reaches this device",
			"release", withdrawn.Version, "reason", withdrawn.Withdrawal.Reason, "advisories", withdrawn.Withdrawal.Advisories)
	case errors.As(err, &withdrawn):
		a.log.Info("skipping withdrawn release", "release", withdrawn.Version,
			"reason", withdrawn.Withdrawal.Reason, "advisories", withdrawn.Withdrawal.Advisories)
	default:
		a.log.Info("up to date", "reason", err)
	}
}

// joinedReasons splits an errors.Join of reasons (Select joins the
// releases it skipped, and the notice of a withdrawn running release to
// its error). Other multi-%w errors stay whole: they are one reason.
func joinedReasons(err error) ([]error, bool) {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil, false
	}
	errs := joined.Unwrap()
	for _, e := range errs {
		if errors.Is(e, verify.ErrNotEligible) || errors.Is(e, verify.ErrWithdrawn) || errors.Is(e, verify.ErrPaused) {
			return errs, true
		}
	}
	return nil, false
}

// nextCheck is the wait before the next cycle: interval, or less when a
// staged rollout opens to this device sooner. The wave's time is by the
// trusted clock, which lags the wall clock: a check at that wall-clock
// time may find the release still closed and wait once more.
func (a *agent) nextCheck(interval time.Duration) time.Duration {
	wait := interval
	if d := time.Until(a.nextWave); !a.nextWave.IsZero() && d < wait {
		wait = max(d, time.Second)
		a.log.Info("next check when the staged rollout reaches this device", "at", a.nextWave.UTC())
	}
	a.nextWave = time.Time{}
	return wait
}
