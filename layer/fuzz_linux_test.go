package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"
)

// nastyArchives are the fuzz seeds: every escape the extractor must stop.
func nastyArchives(t testing.TB) [][]byte {
	dev := func(name string, typ byte) ent { return ent{name: name, typ: typ} }
	sets := [][]ent{
		{file("../../x", "x"), file("/etc/passwd", "x")},
		{symlink("l", "/"), file("l/x", "x"), dir("l/"), file("l/y", "y")},
		{symlink("l", "../.."), symlink("l/m", "../../outside"), file("l/m/secret", "x")},
		{file("rel-escape/secret", "x"), file("abs-escape/x", "x"), hardlink("h", "abs-escape/secret")},
		{hardlink("h", "../outside/secret"), hardlink("i", "/proc/self/exe")},
		{dir("d/"), symlink("d", "../outside"), file("d/secret", "x")},
		{file("a", "x"), symlink("a", "/"), hardlink("b", "a"), file("b/c", "x")},
		{file(".wh...", ""), file("x/.wh..wh..opq", ""), file("rel-escape/.wh..wh..opq", ""), file(".wh.rel-escape", "")},
		{dev("c", tar.TypeChar), dev("b", tar.TypeBlock), dev("f", tar.TypeFifo), hardlink("c2", "c")},
		{symlink("a", "b"), symlink("b", "a/c"), file("a/d", "x")},
		{symlink("s", "../outside"), symlink("l", "missing/../s"), file("l/pwned", "x"), file("l/.wh.secret", ""), hardlink("h", "l/secret")},
		{{name: "d/", typ: tar.TypeDir, pax: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.x": "1"}}},
	}
	var out [][]byte
	for _, s := range sets {
		out = append(out, makeArchive(t, s...))
	}
	return append(out, compress(t, Gzip, out[1], 0), compress(t, Zstd, out[2], 0))
}

// FuzzExtract: whatever the archive, nothing outside the target changes.
// Run it by hand with: go test ./layer -run '^$' -fuzz FuzzExtract -fuzztime 2m
func FuzzExtract(f *testing.F) {
	for _, seed := range nastyArchives(f) {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		sb := newSandbox(t)
		opts := ExtractOptions{MaxSize: 8 << 20, IgnoreOwnership: os.Geteuid() != 0}
		if overlay {
			opts.Mode = OverlayLower
		}
		Extract(context.Background(), bytes.NewReader(data), sb.root, opts)
		sb.untouched(t)
	})
}
