package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
)

// nastyArchives are the fuzz seeds: every escape the extractor must stop.
// Links that leave the target point at hostAlias (the sandbox's host
// directories, whatever process runs the seed), at the real / and /etc,
// or climb with "..". Through the real host they only ever create new
// names or add links, never overwrite: a broken extractor run by hand
// must not destroy the machine it runs on, and the sandbox's host/etc
// stands in for the files that matter.
func nastyArchives(t testing.TB) [][]byte {
	dev := func(name string, typ byte) ent { return ent{name: name, typ: typ} }
	alias := hostAlias
	sets := [][]ent{
		// Names that climb or start at "/".
		{file("../../x", "x"), file("/etc/strata-escape-probe", "x"), file("a/../../b", "x"), dir("../host/"), file("../outside/secret", "x")},
		// Symlinks to the real / and to "..", then writes through them.
		{symlink("l", "/"), file("l/strata-escape-probe", "x"), dir("l/"), file("l/y", "y")},
		{symlink("l", "/etc"), file("l/strata-escape-probe", "x"), hardlink("l/strata-escape-link", "l/passwd")},
		{symlink("u", ".."), file("u/strata-escape-probe", "x"), symlink("v", "u/.."), dir("v/up/"), file("v/host/etc/passwd", "x")},
		{symlink("l", "../.."), symlink("l/m", "../../outside"), file("l/m/secret", "x")},
		// Symlinks to the sandbox's host directories by absolute path.
		{symlink("h", alias+"/host"), file("h/etc/passwd", "pwned"), file("h/new", "x"), dir("h/etc/"), file("h/etc/.wh.shadow", "")},
		{symlink("p", alias+"/host/etc/passwd"), file("p", "pwned"), symlink("q", alias+"/outside/secret"), dir("q")},
		// Chained symlinks, each hop harmless on its own.
		{symlink("c1", alias), symlink("c2", "c1/host"), symlink("c3", "c2/etc"), file("c3/passwd", "pwned"), file("c3/new", "x")},
		{symlink("a", "b"), symlink("b", "c"), symlink("c", "../outside"), file("a/x", "x"), hardlink("a/y", "a/secret")},
		{symlink("a", "b"), symlink("b", "a/c"), file("a/d", "x")},
		// Hard links: absolute targets, through symlinks, to a symlink.
		{hardlink("h1", alias+"/outside/secret"), hardlink("h2", "/etc/passwd"), hardlink("h3", alias+"/host/etc/shadow"), hardlink("h4", "../outside/secret"), hardlink("h5", "/proc/self/exe")},
		{symlink("e", alias+"/host/etc"), hardlink("h1", "e/passwd"), hardlink("h2", "alias-escape/etc/shadow"), hardlink("h3", "rel-escape/secret"), hardlink("h4", "abs-escape/secret")},
		{symlink("s", alias+"/host/etc/passwd"), hardlink("h", "s"), file("h/x", "x"), hardlink("h2", "s/")},
		{file("a", "x"), symlink("a", "/"), hardlink("b", "a"), file("b/c", "x")},
		// The target's own escaping symlinks, written into and replaced.
		{file("rel-escape/secret", "x"), file("abs-escape/x", "x"), file("alias-escape/etc/passwd", "pwned"), file("alias-escape/new", "x")},
		{dir("alias-escape/"), dir("rel-escape"), file("abs-escape", "x")},
		{dir("d/"), symlink("d", "../outside"), file("d/secret", "x")},
		// Whiteouts and opaque markers through escaping links.
		{file(".wh...", ""), file("x/.wh..wh..opq", ""), file("rel-escape/.wh..wh..opq", ""), file(".wh.rel-escape", "")},
		{file("alias-escape/.wh.linked", ""), file("alias-escape/etc/.wh..wh..opq", ""), file("abs-escape/.wh.secret", "")},
		{symlink("s", "../outside"), symlink("l", "missing/../s"), file("l/pwned", "x"), file("l/.wh.secret", ""), hardlink("h", "l/secret")},
		// Devices, also where an escaping link points.
		{dev("c", tar.TypeChar), dev("b", tar.TypeBlock), dev("f", tar.TypeFifo), hardlink("c2", "c"), dev("alias-escape/dev", tar.TypeChar), dev("rel-escape/fifo", tar.TypeFifo)},
		// Forged overlay xattrs, including through an escaping link.
		{{name: "d/", typ: tar.TypeDir, pax: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.x": "1"}}},
		{{name: "alias-escape/etc/", typ: tar.TypeDir, pax: map[string]string{"SCHILY.xattr.user.x": "1"}}, {name: "rel-escape/secret", typ: tar.TypeReg, pax: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/x"}}},
	}
	var out [][]byte
	for _, s := range sets {
		out = append(out, makeArchive(t, s...))
	}
	return append(out, compress(t, Gzip, out[1], 0), compress(t, Zstd, out[5], 0))
}

// FuzzExtract: whatever the archive, nothing outside the target changes
// (see sandbox.untouched for what is compared). Run it by hand with:
//
//	go test ./layer -run '^$' -fuzz FuzzExtract -fuzztime 2m -fuzzminimizetime 50x
//
// A run builds a sandbox on disk (milliseconds), so Go's default of up to a
// minute minimising each new-coverage input would leave a short run no time
// to fuzz.
func FuzzExtract(f *testing.F) {
	for _, seed := range nastyArchives(f) {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		sb := newSandbox(t)
		opts := ExtractOptions{MaxSize: 8 << 20, Owners: testOwners()}
		if overlay {
			opts.Mode = OverlayLower
		}
		Extract(context.Background(), bytes.NewReader(data), sb.root, opts)
		sb.untouched(t)
	})
}
