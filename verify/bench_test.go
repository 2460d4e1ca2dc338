package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otaseal/otaseal/internal/tuftest"
	"github.com/otaseal/otaseal/manifest"
	"github.com/stretchr/testify/require"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Benchmarks of targets verification at catalogue scale, on the same
// bytes for both implementations:
//
//	go test -run '^$' -bench 'VerifyTargets|HashBins' -benchmem -benchtime 3x ./verify
//
// n=100000 is skipped under -short.

// benchEntry is one target of a generated catalogue: its path and the JSON
// of its entry as a publisher writes it (compact, keys sorted).
type benchEntry struct {
	path string
	json string
}

var benchCache struct {
	sync.Mutex
	entries map[int][]benchEntry
}

// catalogue returns n realistic entries, sorted by path: an image of
// hardware model hw-(i%500), version, sha256 and sha512, and the otaseal
// firmware object.
func catalogue(b testing.TB, n int) []benchEntry {
	benchCache.Lock()
	defer benchCache.Unlock()
	if e, ok := benchCache.entries[n]; ok {
		return e
	}
	out := make([]benchEntry, 0, n)
	for i := 0; i < n; i++ {
		hw := fmt.Sprintf("hw-%d", i%500)
		v := fmt.Sprintf("%d.%d.%d", 1+i/50000, (i/500)%100, i%7)
		path := hw + "/" + v + "/firmware.bin"
		tf := &manifest.TargetFile{Length: int64(8<<20 + i)}
		require.NoError(b, manifest.SetFirmware(tf, manifest.Firmware{Version: manifest.MustParseVersion(v),
			SecurityVersion: uint64(i % 9), HardwareIDs: []string{hw}, Severity: manifest.SeveritySecurity,
			Advisories: []string{"CVE-2026-0001"}}))
		s256 := sha256.Sum256([]byte(path))
		s512 := sha512.Sum512([]byte(path))
		entry := fmt.Sprintf(`{"custom":%s,"hashes":{"sha256":"%s","sha512":"%s"},"length":%d}`,
			*tf.Custom, hex.EncodeToString(s256[:]), hex.EncodeToString(s512[:]), tf.Length)
		out = append(out, benchEntry{path, entry})
	}
	slices.SortFunc(out, func(a, b benchEntry) int { return strings.Compare(a.path, b.path) })
	if benchCache.entries == nil {
		benchCache.entries = map[int][]benchEntry{}
	}
	benchCache.entries[n] = out
	return out
}

// signedTargets writes a targets document of entries (delegations, if
// not empty, is the JSON of its "delegations" member) signed by signers.
func signedTargets(b testing.TB, entries []benchEntry, delegations string, signers []tuftest.Signer) []byte {
	var signed bytes.Buffer
	signed.WriteString(`{"_type":"targets",`)
	if delegations != "" {
		signed.WriteString(`"delegations":` + delegations + `,`)
	}
	signed.WriteString(`"expires":"` + testNow.AddDate(0, 3, 0).Format("2006-01-02T15:04:05Z") + `","spec_version":"1.0.31","targets":{`)
	for i, e := range entries {
		if i > 0 {
			signed.WriteByte(',')
		}
		fmt.Fprintf(&signed, "%q:%s", e.path, e.json)
	}
	signed.WriteString(`},"version":1}`)
	// The canonical form is computed by the code under test but checked
	// by go-tuf in the gotuf benchmarks and in TestBenchDocument.
	p, err := manifest.ParseTargetsUnverified("targets", []byte(`{"signatures":[],"signed":`+signed.String()+`}`), manifest.Limits{Targets: 1 << 30})
	require.NoError(b, err)
	var doc bytes.Buffer
	doc.WriteString(`{"signatures":[`)
	for i, s := range signers {
		sig, err := s.SignMessage(bytes.NewReader(p.Canonical))
		require.NoError(b, err)
		id, err := s.Key.ID()
		require.NoError(b, err)
		if i > 0 {
			doc.WriteByte(',')
		}
		fmt.Fprintf(&doc, `{"keyid":"%s","sig":"%x"}`, id, sig)
	}
	doc.WriteString(`],"signed":`)
	doc.Write(signed.Bytes())
	doc.WriteString(`}`)
	return doc.Bytes()
}

// TestBenchDocument checks that go-tuf accepts the benchmarks' documents,
// so both implementations are timed on success.
func TestBenchDocument(t *testing.T) {
	for _, keys := range []int{1, 3} {
		fx := newFixture(t, keys, keys)
		data := signedTargets(t, catalogue(t, 200), "", fx.signers)
		md, err := metadata.Targets().FromBytes(data)
		require.NoError(t, err)
		require.NoError(t, fx.root.VerifyDelegate("targets", md))
		_, err = verifyTargets(fx.root, "targets", data, manifest.Limits{})
		require.NoError(t, err)
	}
}

func BenchmarkVerifyTargets(b *testing.B) {
	lim := manifest.Limits{Targets: 1 << 30}
	for _, n := range []int{10000, 100000} {
		if n > 10000 && testing.Short() {
			continue
		}
		for _, keys := range []int{1, 3} {
			fx := newFixture(b, keys, keys)
			data := signedTargets(b, catalogue(b, n), "", fx.signers)
			b.Run(fmt.Sprintf("impl=otaseal/n=%d/keys=%d", n, keys), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if _, err := verifyTargets(fx.root, "targets", data, lim); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("impl=gotuf/n=%d/keys=%d", n, keys), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					md, err := metadata.Targets().FromBytes(data)
					if err != nil {
						b.Fatal(err)
					}
					if err := fx.root.VerifyDelegate("targets", md); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkHashBins shows what hash-bin delegation (TAP 15, sign's
// AddHashBins) saves a device of a 100,000-image fleet that refreshes and
// looks up its own image: the bytes it downloads (timestamp, snapshot,
// top-level targets and, with bins, the one bin its image hashes to; the
// largest bin, to be conservative) as bytes/device, and the time to verify
// the targets documents among them.
func BenchmarkHashBins(b *testing.B) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	lim := manifest.Limits{Targets: 1 << 30}
	entries := catalogue(b, n)
	top := newFixture(b, 1, 1)
	binKey := tuftest.NewSigner(b, "fast bins")
	binID, err := binKey.Key.ID()
	require.NoError(b, err)
	for _, bits := range []int{0, 8, 11} {
		var docs [][]byte // what the device downloads, in order
		var roles []string
		meta := map[string]int64{"targets.json": 1}
		if bits == 0 {
			docs = append(docs, signedTargets(b, entries, "", top.signers))
			roles = append(roles, "targets")
		} else {
			sr := &metadata.SuccinctRoles{KeyIDs: []string{binID}, Threshold: 1, BitLength: bits, NamePrefix: "bin"}
			bins := map[string][]benchEntry{}
			for _, e := range entries {
				name := sr.GetRolesForTarget(e.path)[0].Name
				bins[name] = append(bins[name], e)
			}
			largest := ""
			for _, name := range sr.GetRoles() {
				meta[name+".json"] = 1
				if len(bins[name]) > len(bins[largest]) {
					largest = name
				}
			}
			dl := fmt.Sprintf(`{"keys":{%q:{"keytype":"ed25519","keyval":{"public":%q},"scheme":"ed25519"}},"succinct_roles":{"bit_length":%d,"keyids":[%q],"name_prefix":"bin","threshold":1}}`,
				binID, binKey.Key.Value.PublicKey, bits, binID)
			docs = append(docs, signedTargets(b, nil, dl, top.signers), signedTargets(b, bins[largest], "", []tuftest.Signer{binKey}))
			roles = append(roles, "targets", largest)
		}
		snap := metadata.Snapshot(testNow.AddDate(0, 0, 7))
		for name, v := range meta {
			snap.Signed.Meta[name] = metadata.MetaFile(v)
		}
		snapJSON := tuftest.SignBytes(b, snap, tuftest.NewSigner(b, "fast snapshot"))
		ts := metadata.Timestamp(testNow.AddDate(0, 0, 1))
		ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(1)
		tsJSON := tuftest.SignBytes(b, ts, tuftest.NewSigner(b, "fast timestamp"))
		total := len(tsJSON) + len(snapJSON)
		for _, d := range docs {
			total += len(d)
		}
		b.Run(fmt.Sprintf("bins=%d/n=%d", 1<<bits&^1, n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var delegator any = top.root
				for i, d := range docs {
					md, err := verifyTargets(delegator, roles[i], d, lim)
					if err != nil {
						b.Fatal(err)
					}
					delegator = md
				}
			}
			b.ReportMetric(float64(total), "bytes/device")
		})
	}
}
