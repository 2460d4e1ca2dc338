package main

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets run use the test binary as its child, as it uses the
// program itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "encbench child: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The comparison on a 1 MiB image: both installs run in child processes
// and the summary names both, with their difference.
func TestEncbench(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out, 1, 1, "x25519", "chacha20-poly1305", 4096))
	assert.Regexp(t, `(?m)^plain +\d`, out.String())
	assert.Regexp(t, `(?m)^encrypted +\d`, out.String())
	assert.Contains(t, out.String(), "encrypted vs plain: time ")
}
