package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emptyGRUBEnv is what grub-editenv FILE create writes.
func emptyGRUBEnv() []byte {
	return append([]byte(grubEnvHeader), bytes.Repeat([]byte{'#'}, grubEnvSize-len(grubEnvHeader))...)
}

func TestGRUBEnvRoundTrip(t *testing.T) {
	e, err := parseGRUBEnv(emptyGRUBEnv())
	require.NoError(t, err)
	e.set("otaseal_slot", "a")
	e.set("otaseal_trial", "")
	e.set("odd", "back\\slash\nnewline")
	b, err := e.encode()
	require.NoError(t, err)
	assert.Len(t, b, grubEnvSize)
	assert.Contains(t, string(b), "odd=back\\\\slash\\\nnewline\n")
	got, err := parseGRUBEnv(b)
	require.NoError(t, err)
	assert.Equal(t, e.names, got.names)
	assert.Equal(t, e.values, got.values)
}

func TestGRUBEnvRefusesBadBlocks(t *testing.T) {
	good := emptyGRUBEnv()
	for name, b := range map[string][]byte{
		"short":     good[:grubEnvSize-1],
		"long":      append(bytes.Clone(good), '#'),
		"no header": append([]byte("# GRUB Environment Blocc\n"), good[len(grubEnvHeader):]...),
		"empty":     nil,
	} {
		_, err := parseGRUBEnv(b)
		assert.ErrorIs(t, err, ErrGRUBEnv, name)
	}
	e, err := parseGRUBEnv(good)
	require.NoError(t, err)
	e.set("big", strings.Repeat("x", grubEnvAtomic))
	_, err = e.encode()
	assert.ErrorIs(t, err, ErrGRUBEnv, "variables beyond one sector")
	e, _ = parseGRUBEnv(good)
	e.set("a=b", "c")
	_, err = e.encode()
	assert.ErrorIs(t, err, ErrGRUBEnv, "a name with '='")
}

// GRUB's own tool reads what the agent writes, and the agent reads what
// the tool writes.
func TestGRUBEnvAgreesWithGrubEditenv(t *testing.T) {
	tool, err := exec.LookPath("grub-editenv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("grub-editenv not found: install grub-common")
		}
		t.Skip("grub-editenv not found (Debian package grub-common)")
	}
	path := filepath.Join(t.TempDir(), "grubenv")
	editenv := func(args ...string) string {
		out, err := exec.Command(tool, append([]string{path}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	editenv("create")
	editenv("set", "kept=by-grub", "otaseal_slot=a")
	g := &bootGRUB{env: path}
	require.NoError(t, g.ArmTrial("b"))
	assert.Equal(t, "kept=by-grub\notaseal_slot=a\notaseal_trial=b\notaseal_tries=3\notaseal_fellback=\n", editenv("list"))

	editenv("set", "otaseal_fellback=b", "otaseal_trial=")
	slot, err := g.FellBack()
	require.NoError(t, err)
	assert.Equal(t, "b", slot)
	require.NoError(t, g.MarkGood("a"))
	require.NoError(t, g.ClearFellBack())
	assert.ElementsMatch(t, []string{"kept=by-grub", "otaseal_slot=a", "otaseal_trial=", "otaseal_fellback=", "otaseal_tries=", ""},
		strings.Split(editenv("list"), "\n"))
}

func TestBootGRUBSteps(t *testing.T) {
	dir := t.TempDir()
	env, cmdline := filepath.Join(dir, "grubenv"), filepath.Join(dir, "cmdline")
	require.NoError(t, os.WriteFile(env, emptyGRUBEnv(), 0o644))
	require.NoError(t, os.WriteFile(cmdline, []byte("console=ttyS0 otaseal.slot=b panic=1\n"), 0o644))
	rebooted := 0
	g := &bootGRUB{env: env, cmdline: cmdline, reboot: func() error { rebooted++; return nil }}

	slot, err := g.Booted(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "b", slot)

	require.NoError(t, g.ArmTrial("a"))
	e, err := readGRUBEnv(env)
	require.NoError(t, err)
	assert.Equal(t, "a", e.get(grubVarTrial))
	assert.Equal(t, grubTries, e.get(grubVarTries))

	require.NoError(t, g.MarkGood("a"))
	require.NoError(t, g.MarkGood("a"))
	e, err = readGRUBEnv(env)
	require.NoError(t, err)
	assert.Equal(t, "a", e.get(grubVarSlot))
	assert.Equal(t, "", e.get(grubVarTrial))

	ok, err := g.Reboot()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1, rebooted)

	require.NoError(t, os.WriteFile(cmdline, []byte("console=ttyS0 otaseal.slot=c\n"), 0o644))
	_, err = g.Booted(context.Background())
	assert.ErrorContains(t, err, "no otaseal.slot=a or otaseal.slot=b")

	// A block that is not 1024 bytes is never rewritten: it would move.
	require.NoError(t, os.WriteFile(env, emptyGRUBEnv()[:512], 0o644))
	assert.ErrorIs(t, g.MarkGood("b"), ErrGRUBEnv)
}

func FuzzParseGRUBEnv(f *testing.F) {
	f.Add(emptyGRUBEnv())
	e, _ := parseGRUBEnv(emptyGRUBEnv())
	e.set("otaseal_slot", "b")
	e.set("x", "a\\b\nc")
	b, _ := e.encode()
	f.Add(b)
	f.Add([]byte(grubEnvHeader + "a=b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseGRUBEnv(b)
		if err != nil {
			return
		}
		out, err := e.encode()
		if err != nil {
			return // names or values that do not fit: refused, not written
		}
		again, err := parseGRUBEnv(out)
		if err != nil {
			t.Fatalf("re-parsing our own block: %v", err)
		}
		if len(again.names) != len(e.names) {
			t.Fatalf("round trip changed the variables: %q -> %q", e.names, again.names)
		}
		for _, n := range e.names {
			if again.values[n] != e.values[n] {
				t.Fatalf("round trip changed %q: %q -> %q", n, e.values[n], again.values[n])
			}
		}
	})
}
