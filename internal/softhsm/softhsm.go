// Package softhsm sets up SoftHSM2 tokens for tests that sign through
// PKCS#11, the way a release engineer's HSM would: each test gets a token
// of its own in a temporary directory, and keys generated inside it.
//
// Without SoftHSM2 a test is skipped, unless the CI environment variable is
// set: there a missing tool fails the test, since CI installs it.
package softhsm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// modulePaths are where distributions install the SoftHSM2 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// Module returns the path of the SoftHSM2 PKCS#11 module, or "".
func Module() string {
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// NewToken initialises a token with label and user PIN pin in a fresh
// SoftHSM2 configuration (SOFTHSM2_CONF is set for the test), and returns
// the module path.
func NewToken(t testing.TB, label, pin string) string {
	t.Helper()
	module := Module()
	_, lookErr := exec.LookPath("softhsm2-util")
	if module == "" || lookErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("SoftHSM2 is required in CI (softhsm2-util: %v, module found: %q)", lookErr, module)
		}
		t.Skip("SoftHSM2 not installed (softhsm2-util and libsofthsm2.so)")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-"+pin).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return module
}
