package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// GRUB's environment block (the file grub-editenv writes and GRUB's
// load_env and save_env read): a fixed-size file that starts with a
// header line, holds one name=value line per variable, and is padded
// with '#' to its size, 1024 bytes. GRUB's save_env writes the block in
// place through the sectors the file occupies, which is why the file is
// never recreated, only rewritten; the agent does the same.
const (
	grubEnvHeader = "# GRUB Environment Block\n"
	grubEnvSize   = 1024
	// grubEnvAtomic is the part of the block a single sector write
	// covers. The agent keeps the variables within it, so that a power
	// cut during a write leaves the old block or the new one, never a
	// mix: the padding after it never changes.
	grubEnvAtomic = 512
)

// ErrGRUBEnv: the environment block is not in GRUB's format, or the
// variables do not fit.
var ErrGRUBEnv = errors.New("deviceagent: bad GRUB environment block")

// grubEnv is a parsed environment block: its variables in file order.
type grubEnv struct {
	names  []string
	values map[string]string
}

// parseGRUBEnv parses a block as GRUB does: lines after the header,
// "name=value", with backslash escaping a backslash or a newline in the
// value; the '#' padding and comment lines are skipped. It refuses a
// block of the wrong size or without the header.
func parseGRUBEnv(b []byte) (*grubEnv, error) {
	if len(b) != grubEnvSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrGRUBEnv, len(b), grubEnvSize)
	}
	if !bytes.HasPrefix(b, []byte(grubEnvHeader)) {
		return nil, fmt.Errorf("%w: no %q header", ErrGRUBEnv, strings.TrimSpace(grubEnvHeader))
	}
	e := &grubEnv{values: map[string]string{}}
	rest := b[len(grubEnvHeader):]
	for len(rest) > 0 {
		var line []byte
		var val strings.Builder
		// A line ends at an unescaped newline.
		i := 0
		for ; i < len(rest) && rest[i] != '\n'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
		}
		if i == len(rest) {
			break // the padding, or an unterminated line: GRUB ignores both
		}
		line, rest = rest[:i], rest[i+1:]
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 {
			continue
		}
		name := string(line[:eq])
		for j := eq + 1; j < len(line); j++ {
			if line[j] == '\\' && j+1 < len(line) {
				j++
			}
			val.WriteByte(line[j])
		}
		if _, dup := e.values[name]; !dup {
			e.names = append(e.names, name)
		}
		e.values[name] = val.String()
	}
	return e, nil
}

func (e *grubEnv) get(name string) string { return e.values[name] }

func (e *grubEnv) set(name, value string) {
	if _, ok := e.values[name]; !ok {
		e.names = append(e.names, name)
	}
	e.values[name] = value
}

// encode returns the block, refusing one whose variables do not fit in a
// single sector (grubEnvAtomic).
func (e *grubEnv) encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(grubEnvHeader)
	for _, n := range e.names {
		if n == "" || strings.ContainsAny(n, "=\n\\#") {
			return nil, fmt.Errorf("%w: variable name %q", ErrGRUBEnv, n)
		}
		b.WriteString(n)
		b.WriteByte('=')
		for _, c := range []byte(e.values[n]) {
			if c == '\\' || c == '\n' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	if b.Len() > grubEnvAtomic {
		return nil, fmt.Errorf("%w: variables take %d bytes, more than the %d of one sector", ErrGRUBEnv, b.Len(), grubEnvAtomic)
	}
	b.Write(bytes.Repeat([]byte{'#'}, grubEnvSize-b.Len()))
	return b.Bytes(), nil
}

// readGRUBEnv reads and parses the block at path.
func readGRUBEnv(path string) (*grubEnv, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := parseGRUBEnv(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

// writeGRUBEnv rewrites the block at path in place and syncs it. A temp
// file and a rename would move the block to other sectors: GRUB's
// save_env would then write where the file no longer is.
func writeGRUBEnv(path string, e *grubEnv) error {
	b, err := e.encode()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != grubEnvSize {
		f.Close()
		return fmt.Errorf("%w: %s is not a %d-byte block (create it with grub-editenv %s create)", ErrGRUBEnv, path, grubEnvSize, path)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
