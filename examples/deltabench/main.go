// Command deltabench compares delta tools on pairs of real binaries:
//
//	deltabench [flags] PAIRDIR
//
// PAIRDIR holds pairs of files named NAME-old.EXT and NAME-new.EXT, as
// written by fetch-pairs.sh next to this file (it fetches the benchmark
// pairs from the npm registry and checks their pinned hashes; by default
// into ~/.cache/otaseal-bench). For each pair it runs our bsdiff and
// bspatch (examples/bsdiff and examples/bspatch, built into a temporary
// directory, in both formats) and, when found on PATH, C bsdiff/bspatch,
// zstd --patch-from and xdelta3. Every tool runs as a child process, so
// wall time and peak RSS compare like for like; peak RSS is measured with
// GNU time where installed (see gnuTime), and diffs are timed under it. Each
// output is checked against the new file. Applies are short and the
// machine's speed drifts, so each apply runs -apply-runs times with the
// tools taking turns, and the table keeps the fastest run. Our bspatch
// runs with -fsync=false: none of the other tools syncs its output, and on
// the small pairs the sync alone costs more than applying the patch.
//
// It prints a Markdown table: patch size, diff and apply wall time and
// peak RSS, and for ours the ratios to C bsdiff/bspatch. A streaming patch
// is marked with its layout when it is not the zstd-coded bsdiff layout:
// "(range-coded)" for the bsdiff layout range-coded, "(LZ layout,
// range-coded)" and "(LZ layout)" for the LZ layout (package delta chooses
// the range-coded layouts for images of at most 4 MiB together, and the LZ
// layout among them for distant versions).
//
// Exit status: 0 when every tool reproduced every new file, 1 when one
// failed, 2 on bad usage.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// tool is one delta program pair; the templates use {old} {new} {patch}
// {out}.
type tool struct {
	name        string
	diff, apply []string
}

type result struct {
	patchSize         int64
	magic             string // the patch's first 8 bytes: which layout ours chose
	diffTime, appTime time.Duration
	diffRSS, appRSS   int64 // KiB
	ok                bool
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fs := flag.NewFlagSet("deltabench", flag.ContinueOnError)
	runs := fs.Int("runs", 1, "run each diff this many times and keep the fastest (RSS is the largest seen)")
	applyRuns := fs.Int("apply-runs", 10, "run each apply this many times, the tools taking turns, and keep the fastest")
	only := fs.String("pairs", "", "comma-separated pair names to run (default all)")
	skip := fs.String("skip", "", "comma-separated tools to leave out: c, zstd, xdelta3")
	oursDiff := fs.String("bsdiff", "", "our bsdiff binary (default: go build ./examples/bsdiff)")
	oursPatch := fs.String("bspatch", "", "our bspatch binary (default: go build ./examples/bspatch)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: deltabench [flags] PAIRDIR\n\n"+
			"Benchmark our bsdiff/bspatch against C bsdiff, zstd --patch-from and xdelta3\n"+
			"on PAIRDIR's NAME-old.EXT/NAME-new.EXT pairs (examples/deltabench/fetch-pairs.sh fetches them).\n"+
			"Run it from the module root so it can build our programs, or pass -bsdiff/-bspatch.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() != 1 || *runs < 1 || *applyRuns < 1 {
		fs.Usage()
		os.Exit(2)
	}
	pairs, err := findPairs(fs.Arg(0), *only)
	if err != nil || len(pairs) == 0 {
		fmt.Fprintln(os.Stderr, "deltabench: no pairs:", err)
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "deltabench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deltabench:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	if gnuTime == "" {
		log.Warn("GNU time (/usr/bin/time) not found: peak RSS is rusage's, which counts deltabench's own peak under every child's")
	}
	if *oursDiff == "" || *oursPatch == "" {
		log.Info("building our bsdiff and bspatch")
		*oursDiff, *oursPatch = filepath.Join(tmp, "bsdiff"), filepath.Join(tmp, "bspatch")
		for _, b := range [][2]string{{*oursDiff, "./examples/bsdiff"}, {*oursPatch, "./examples/bspatch"}} {
			if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "deltabench: go build %s: %v\n%s", b[1], err, out)
				os.Exit(1)
			}
		}
	}
	tools := []tool{
		{"ours bsdiff40", []string{*oursDiff, "-format", "bsdiff40", "{old}", "{new}", "{patch}"},
			[]string{*oursPatch, "-format", "bsdiff40", "-fsync=false", "{old}", "{out}", "{patch}"}},
		{"ours otaseal-zstd", []string{*oursDiff, "-format", "otaseal-zstd", "{old}", "{new}", "{patch}"},
			[]string{*oursPatch, "-format", "otaseal-zstd", "-fsync=false", "{old}", "{out}", "{patch}"}},
	}
	skipped := func(name string) bool { return strings.Contains(","+*skip+",", ","+name+",") }
	if !skipped("c") && onPath("bsdiff") && onPath("bspatch") {
		tools = append(tools, tool{"C bsdiff 4.3", []string{"bsdiff", "{old}", "{new}", "{patch}"},
			[]string{"bspatch", "{old}", "{out}", "{patch}"}})
	}
	if !skipped("zstd") && onPath("zstd") {
		tools = append(tools, tool{"zstd -19 --patch-from",
			[]string{"zstd", "-q", "-f", "-19", "--patch-from={old}", "{new}", "-o", "{patch}"},
			[]string{"zstd", "-q", "-f", "-d", "--memory=2048MB", "--patch-from={old}", "{patch}", "-o", "{out}"}})
	}
	if !skipped("xdelta3") && onPath("xdelta3") {
		tools = append(tools, tool{"xdelta3 -9",
			[]string{"xdelta3", "-e", "-9", "-f", "-s", "{old}", "{new}", "{patch}"},
			[]string{"xdelta3", "-d", "-f", "-s", "{old}", "{patch}", "{out}"}})
	}

	failed := false
	fmt.Println("| pair | tool | patch bytes | size/C | diff s | diff RSS MiB | apply s | apply RSS MiB | diff time/C | diff RSS/C | apply time/C | apply RSS/C |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, p := range pairs {
		log.Info("running", "pair", p.name)
		results, errs := runPair(tools, p, tmp, *runs, *applyRuns)
		for name, err := range errs {
			log.Error("tool failed", "pair", p.name, "tool", name, "err", err)
			failed = true
		}
		c, haveC := results["C bsdiff 4.3"]
		for _, tl := range tools {
			r := results[tl.name]
			status := layoutNote(r.magic)
			if !r.ok {
				status = " (FAILED)"
				failed = true
			}
			ratios := "| | | | |"
			sizeRatio := ""
			if haveC && c.ok {
				sizeRatio = fmt.Sprintf("%.3f", float64(r.patchSize)/float64(c.patchSize))
				if strings.HasPrefix(tl.name, "ours") {
					ratios = fmt.Sprintf("| %.2f | %.2f | %.2f | %.2f |",
						r.diffTime.Seconds()/c.diffTime.Seconds(), float64(r.diffRSS)/float64(c.diffRSS),
						r.appTime.Seconds()/c.appTime.Seconds(), float64(r.appRSS)/float64(c.appRSS))
				}
			}
			fmt.Printf("| %s | %s%s | %d | %s | %.3f | %.1f | %.3f | %.1f %s\n",
				p.name, tl.name, status, r.patchSize, sizeRatio,
				r.diffTime.Seconds(), float64(r.diffRSS)/1024, r.appTime.Seconds(), float64(r.appRSS)/1024, ratios)
		}
	}
	if failed {
		os.Exit(1)
	}
}

type pair struct{ name, old, new string }

// findPairs lists NAME-old.EXT files that have a NAME-new.EXT beside them.
func findPairs(dir, only string) ([]pair, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	var pairs []pair
	for _, e := range ents {
		name, rest, ok := strings.Cut(e.Name(), "-old")
		if !ok || e.IsDir() || (len(want) > 0 && !want[name]) {
			continue
		}
		newPath := filepath.Join(dir, name+"-new"+rest)
		if _, err := os.Stat(newPath); err != nil {
			continue
		}
		pairs = append(pairs, pair{name, filepath.Join(dir, e.Name()), newPath})
	}
	sort.Slice(pairs, func(i, j int) bool { return fileSize(pairs[i].new) < fileSize(pairs[j].new) })
	return pairs, nil
}

// runPair runs every tool's diff runs times, then every apply applyRuns
// times with the tools taking turns: an apply of a small pair takes a few
// milliseconds, and taking turns spreads the machine's slow and fast
// moments over all tools instead of giving each tool its own. It keeps
// the fastest time and the largest RSS of each command, and checks each
// tool's output against the new file.
func runPair(tools []tool, p pair, tmp string, runs, applyRuns int) (map[string]result, map[string]error) {
	results := make(map[string]result)
	errs := make(map[string]error)
	vars := make([]*strings.Replacer, len(tools))
	outs := make([]string, len(tools))
	for i, tl := range tools {
		patch := filepath.Join(tmp, fmt.Sprintf("patch-%d", i))
		outs[i] = filepath.Join(tmp, fmt.Sprintf("out-%d", i))
		os.Remove(patch)
		os.Remove(outs[i])
		vars[i] = strings.NewReplacer("{old}", p.old, "{new}", p.new, "{patch}", patch, "{out}", outs[i])
		var r result
		for k := 0; k < runs; k++ {
			dt, rss, err := runChild(tl.diff, vars[i], true)
			if err != nil {
				errs[tl.name] = fmt.Errorf("diff: %w", err)
				break
			}
			if k == 0 || dt < r.diffTime {
				r.diffTime = dt
			}
			r.diffRSS = max(r.diffRSS, rss)
		}
		r.patchSize = fileSize(patch)
		r.magic = readMagic(patch)
		results[tl.name] = r
	}
	for k := 0; k < applyRuns; k++ {
		for j := range tools {
			// Each round starts with another tool, so none is always
			// the first after a diff or after another's output.
			i := (j + k) % len(tools)
			tl := tools[i]
			if errs[tl.name] != nil {
				continue
			}
			// Timed without GNU time, whose start would be a sizeable part
			// of a small apply; the first round also measures RSS.
			at, rss, err := runChild(tl.apply, vars[i], false)
			if gnuTime != "" {
				rss = 0
				if err == nil && k == 0 {
					_, rss, err = runChild(tl.apply, vars[i], true)
				}
			}
			if err != nil {
				errs[tl.name] = fmt.Errorf("apply: %w", err)
				continue
			}
			r := results[tl.name]
			if k == 0 || at < r.appTime {
				r.appTime = at
			}
			r.appRSS = max(r.appRSS, rss)
			results[tl.name] = r
		}
	}
	for i, tl := range tools {
		if errs[tl.name] != nil {
			continue
		}
		same, err := sameContent(outs[i], p.new)
		switch {
		case err != nil:
			errs[tl.name] = err
		case !same:
			errs[tl.name] = fmt.Errorf("output differs from %s", p.new)
		default:
			r := results[tl.name]
			r.ok = true
			results[tl.name] = r
		}
	}
	return results, errs
}

// gnuTime is GNU time's path when it is installed. A child started by a Go
// program shares the parent's memory until it executes its program (Go
// clones with CLONE_VM), and Linux then counts the parent's peak in the
// child's: rusage puts a floor of deltabench's own RSS under every figure,
// above what bspatch needs for a small pair. GNU time forks from a small C
// process and reports the child's own peak.
var gnuTime = func() string {
	out, err := exec.Command("/usr/bin/time", "--version").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("GNU")) {
		return ""
	}
	return "/usr/bin/time"
}()

// runChild runs one command and returns its wall time and peak RSS in KiB.
// With viaTime, it runs under GNU time for an exact RSS, at the cost of
// time's own start in the wall time (about a millisecond); without, the
// RSS is rusage's, floored as gnuTime says.
func runChild(tmpl []string, vars *strings.Replacer, viaTime bool) (time.Duration, int64, error) {
	args := make([]string, len(tmpl))
	for i, a := range tmpl {
		args[i] = vars.Replace(a)
	}
	var rssFile string
	if viaTime && gnuTime != "" {
		f, err := os.CreateTemp("", "deltabench-rss-")
		if err != nil {
			return 0, 0, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		args = append([]string{gnuTime, "-f", "%M", "-o", rssFile}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return wall, 0, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	var rss int64
	if rssFile != "" {
		b, err := os.ReadFile(rssFile)
		if err != nil {
			return wall, 0, err
		}
		if _, err := fmt.Sscan(string(b), &rss); err != nil {
			return wall, 0, fmt.Errorf("GNU time wrote %q: %v", b, err)
		}
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	return wall, rss, nil
}

// readMagic returns the first 8 bytes of a file, or "" if it has fewer.
func readMagic(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return ""
	}
	return string(b[:])
}

func onPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

func sameContent(a, b string) (bool, error) {
	ha, err := hashFile(a)
	if err != nil {
		return false, err
	}
	hb, err := hashFile(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// layoutNote names the layout of one of our streaming patches by its magic
// (empty for the zstd-coded bsdiff layout and for other tools' patches).
func layoutNote(magic string) string {
	switch magic {
	case "OTADLR01":
		return " (range-coded)"
	case "OTADLZ02":
		return " (LZ layout, range-coded)"
	case "OTADLZ01":
		return " (LZ layout)"
	}
	return ""
}
