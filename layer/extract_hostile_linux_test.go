package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// extractIn applies archive to sb's root and checks the two things every
// extraction must give, failed or not: the diffID is the hash of the
// stream as it came (whatever names its headers claim), and nothing
// outside the target changed.
func extractIn(t *testing.T, sb sandbox, archive []byte, mode ExtractMode) error {
	t.Helper()
	got, err := Extract(context.Background(), bytes.NewReader(archive), sb.root, ExtractOptions{Mode: mode, Owners: testOwners()})
	sb.untouched(t)
	sum := sha256.Sum256(archive)
	if want := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}); err == nil && got != want {
		t.Errorf("diffID %s, want the stream's hash %s", got, want)
	}
	return err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("extraction succeeded, want an error containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("got error %q, want one containing %q", err, parts)
		}
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return st
}

func present(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	return err == nil
}

// TestExtractDropsOverlayXattrs: no overlayfs xattr from an archive ever
// reaches the disk. In an overlay lower, a forged redirect or metacopy
// makes overlayfs read another file's data (one outside the layer: the
// redirect is a path, the metacopy origin a file handle), a forged opaque
// or whiteout hides lower layers the OCI stream did not delete. Only the
// stream's own .wh. entries may become overlay markers.
func TestExtractDropsOverlayXattrs(t *testing.T) {
	keys := []string{
		"SCHILY.xattr.trusted.overlay.redirect", "SCHILY.xattr.trusted.overlay.metacopy",
		"SCHILY.xattr.trusted.overlay.opaque", "SCHILY.xattr.trusted.overlay.origin",
		"SCHILY.xattr.trusted.overlay.whiteout", "SCHILY.xattr.trusted.overlay.upper",
		"SCHILY.xattr.trusted.overlay.nlink", "SCHILY.xattr.trusted.overlay.impure",
		"SCHILY.xattr.user.overlay.redirect", "SCHILY.xattr.user.overlay.metacopy",
		"SCHILY.xattr.user.overlay.opaque", "SCHILY.xattr.user.overlay.origin",
		"SCHILY.xattr.user.overlay.whiteout",
		// libarchive's form of the same record: not read at all.
		"LIBARCHIVE.xattr.trusted.overlay.redirect",
	}
	for _, mode := range []ExtractMode{Flatten, OverlayLower} {
		for _, kind := range []string{"file", "dir"} {
			for _, key := range keys {
				t.Run(modeName(mode)+"/"+kind+"/"+key, func(t *testing.T) {
					if strings.Contains(key, ".trusted.") && os.Geteuid() != 0 {
						t.Skip("trusted xattrs need root")
					}
					sb := newSandbox(t)
					// user.keep is the control: the filter must not work by
					// dropping every xattr.
					e := ent{name: "f", typ: tar.TypeReg, pax: map[string]string{key: "y", "SCHILY.xattr.user.keep": "1"}}
					if kind == "dir" {
						e.name, e.typ = "d/", tar.TypeDir
					}
					if err := extractIn(t, sb, makeArchive(t, e), mode); err != nil {
						t.Fatal(err)
					}
					target := filepath.Join(sb.root, strings.TrimSuffix(e.name, "/"))
					if v, err := getxattr(target, "user.keep"); err != nil || string(v) != "1" {
						t.Fatalf("user.keep = %q, %v: the control xattr was not applied", v, err)
					}
					if found := overlayXattrs(t, sb.root); len(found) > 0 {
						t.Errorf("overlay xattrs reached the disk: %q", found)
					}
				})
			}
		}
	}
	// The one legitimate marker: an opaque entry in an overlay lower. It
	// proves overlayXattrs reads the attribute the cases above look for.
	t.Run("overlay/opaque entry", func(t *testing.T) {
		requireRoot(t)
		sb := newSandbox(t)
		if err := extractIn(t, sb, makeArchive(t, dir("d/"), file("d/.wh..wh..opq", "")), OverlayLower); err != nil {
			t.Fatal(err)
		}
		if found := overlayXattrs(t, sb.root); !slices.Equal(found, []string{"d " + overlayOpaqueXattr}) {
			t.Errorf("overlay xattrs %q, want only d's opaque marker", found)
		}
	})
}

// overlayXattrs lists "path name" for every overlay xattr under root.
func overlayXattrs(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names, err := listxattr(p)
		for _, n := range names {
			if strings.HasPrefix(n, "trusted.overlay.") || strings.HasPrefix(n, "user.overlay.") {
				rel, _ := filepath.Rel(root, p)
				found = append(found, rel+" "+n)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestExtractRootNames: every name that cleans to the target itself. A
// directory entry for it is accepted and changes nothing (the target's
// mode and owner are its caller's); anything else would replace the
// target and is refused, naming the entry. Names that climb stay inside.
func TestExtractRootNames(t *testing.T) {
	for _, name := range []string{"", ".", "./", "/", "..", "../", "a/..", "../../..", "./a/../..", "//"} {
		for _, ty := range []struct {
			typ  byte
			kind string
		}{{tar.TypeDir, "dir"}, {tar.TypeReg, "file"}, {tar.TypeSymlink, "symlink"}, {tar.TypeLink, "hardlink"}, {tar.TypeFifo, "fifo"}} {
			typ := ty.typ
			t.Run(fmt.Sprintf("%q/%s", name, ty.kind), func(t *testing.T) {
				sb := newSandbox(t)
				if err := os.Chmod(sb.root, 0o751); err != nil {
					t.Fatal(err)
				}
				sb.before = sb.state(t)
				// The name comes in a PAX path record: the ustar field cannot
				// hold "/" for a file, and the PAX name is what counts.
				entry := rawEnt{hdr: tar.Header{Name: "decoy", Typeflag: typ, Linkname: "a", Mode: 0o777, Uid: 1234}, pax: map[string]string{"path": name}}
				if name == "" {
					// An empty PAX path is no override: the ustar field says "".
					entry.hdr.Name, entry.pax = "", nil
				}
				archive := rawArchive(t, rawEnt{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir}}, entry)
				err := extractIn(t, sb, archive, Flatten)
				if typ == tar.TypeDir {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantErr(t, err, fmt.Sprintf("%q", name), "extraction root")
			})
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"a/../../b", "b"},
		{"../x/./../../y", "y"},
		{"/../../outside/secret", "outside/secret"},
		{".//c//..//d", "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			if err := extractIn(t, sb, makeArchive(t, file(tc.name, "x")), Flatten); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Lstat(filepath.Join(sb.root, tc.want)); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s is not a file in the target: %v", tc.want, err)
			}
		})
	}
	// NUL cannot be in a tar name: the ustar field ends at it, and the
	// reader refuses a PAX path holding one. Nothing is created.
	t.Run("NUL in PAX path", func(t *testing.T) {
		sb := newSandbox(t)
		err := extractIn(t, sb, rawArchive(t, rawEnt{hdr: tar.Header{Name: "a"}, pax: map[string]string{"path": "b\x00../../x"}}), Flatten)
		wantErr(t, err, "reading archive")
		if present(t, filepath.Join(sb.root, "a")) || present(t, filepath.Join(sb.root, "b")) {
			t.Error("an entry with a NUL in its PAX path was extracted")
		}
	})
}

// TestExtractPAXNames: archive/tar applies PAX path and linkpath records
// (and GNU long names) over the ustar fields, and the extractor must use
// the overriding name everywhere: where to create, whether it is a
// whiteout, what a link points to, what an error names. A name checked in
// one field and used from the other is the classic smuggling bug.
func TestExtractPAXNames(t *testing.T) {
	victim := rawEnt{hdr: tar.Header{Name: "victim"}, data: "v"}
	cases := []struct {
		name    string
		mode    ExtractMode
		tree    []node // in the target before extraction (a lower layer)
		ents    []rawEnt
		wantErr []string
		check   func(t *testing.T, sb sandbox)
	}{{
		name: "PAX path wins",
		ents: []rawEnt{{hdr: tar.Header{Name: "decoy"}, pax: map[string]string{"path": "real"}, data: "x"}},
		check: func(t *testing.T, sb sandbox) {
			if !present(t, filepath.Join(sb.root, "real")) || present(t, filepath.Join(sb.root, "decoy")) {
				t.Error("the file was not created under its PAX name only")
			}
		},
	}, {
		name: "PAX path climbs",
		ents: []rawEnt{{hdr: tar.Header{Name: "safe"}, pax: map[string]string{"path": "../../outside/secret"}, data: "x"}},
		check: func(t *testing.T, sb sandbox) {
			if !present(t, filepath.Join(sb.root, "outside/secret")) {
				t.Error("the climbing PAX name was not confined to the target")
			}
		},
	}, {
		name: "PAX path through an escaping symlink",
		ents: []rawEnt{{hdr: tar.Header{Name: "safe"}, pax: map[string]string{"path": "alias-escape/etc/passwd"}, data: "pwned"}},
	}, {
		name: "PAX path is a whiteout",
		ents: []rawEnt{victim, {hdr: tar.Header{Name: "decoy"}, pax: map[string]string{"path": ".wh.victim"}}},
		check: func(t *testing.T, sb sandbox) {
			if present(t, filepath.Join(sb.root, "victim")) || present(t, filepath.Join(sb.root, "decoy")) {
				t.Error("the whiteout in the PAX name was not applied as one")
			}
		},
	}, {
		name: "PAX path is an overlay whiteout",
		mode: OverlayLower,
		ents: []rawEnt{{hdr: tar.Header{Name: "decoy"}, pax: map[string]string{"path": ".wh.victim"}}},
		check: func(t *testing.T, sb sandbox) {
			if st := lstat(t, filepath.Join(sb.root, "victim")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Error("the whiteout in the PAX name did not become overlay's char 0:0")
			}
		},
	}, {
		name: "ustar name is a whiteout, PAX name is not",
		ents: []rawEnt{victim, {hdr: tar.Header{Name: ".wh.victim"}, pax: map[string]string{"path": "keep"}, data: "k"}},
		check: func(t *testing.T, sb sandbox) {
			if !present(t, filepath.Join(sb.root, "victim")) || !present(t, filepath.Join(sb.root, "keep")) {
				t.Error("the ustar name was taken for a whiteout")
			}
		},
	}, {
		name: "PAX path is an opaque marker",
		tree: []node{{path: "d/old", kind: "file", mode: 0o644}},
		ents: []rawEnt{{hdr: tar.Header{Name: "d/x"}, pax: map[string]string{"path": "d/.wh..wh..opq"}}},
		check: func(t *testing.T, sb sandbox) {
			if present(t, filepath.Join(sb.root, "d/old")) || present(t, filepath.Join(sb.root, "d/x")) {
				t.Error("the opaque marker in the PAX name was not applied")
			}
		},
	}, {
		name: "PAX linkpath of a symlink",
		ents: []rawEnt{{hdr: tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "harmless"}, pax: map[string]string{"linkpath": hostAlias + "/host/etc"}}, {hdr: tar.Header{Name: "s/x"}}},
		check: func(t *testing.T, sb sandbox) {
			if got, _ := os.Readlink(filepath.Join(sb.root, "s")); got != hostAlias+"/host/etc" {
				t.Errorf("symlink points to %q, want the PAX linkpath", got)
			}
			// Followed inside the target, the PAX target is a path under it.
			if !present(t, filepath.Join(sb.root, hostAlias, "host/etc/x")) {
				t.Error("s/x was not created where s resolves inside the target")
			}
		},
	}, {
		name:    "PAX linkpath of a hardlink leaves",
		ents:    []rawEnt{{hdr: tar.Header{Name: "a"}}, {hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "a"}, pax: map[string]string{"linkpath": "../outside/secret"}}},
		wantErr: []string{`"h"`, `"../outside/secret"`},
	}, {
		name: "PAX linkpath of a hardlink stays",
		ents: []rawEnt{{hdr: tar.Header{Name: "a"}}, {hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/secret"}, pax: map[string]string{"linkpath": "a"}}},
		check: func(t *testing.T, sb sandbox) {
			if lstat(t, filepath.Join(sb.root, "h")).Ino != lstat(t, filepath.Join(sb.root, "a")).Ino {
				t.Error("h is not a link to a")
			}
		},
	}, {
		name: "GNU long names win",
		ents: []rawEnt{{hdr: tar.Header{Name: "a"}}, {hdr: tar.Header{Name: "decoy", Typeflag: tar.TypeLink, Linkname: "../outside/secret"}, gnuName: "real", gnuLink: "a"}},
		check: func(t *testing.T, sb sandbox) {
			if present(t, filepath.Join(sb.root, "decoy")) || lstat(t, filepath.Join(sb.root, "real")).Ino != lstat(t, filepath.Join(sb.root, "a")).Ino {
				t.Error("the GNU long name or link name was not the one used")
			}
		},
	}, {
		name:    "GNU long link name leaves",
		ents:    []rawEnt{{hdr: tar.Header{Name: "a"}}, {hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "a"}, gnuLink: "/../../outside/secret"}},
		wantErr: []string{`"h"`, "outside/secret"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode == OverlayLower {
				requireRoot(t)
			}
			sb := newSandbox(t)
			makeTree(t, sb.root, tc.tree, treeTime)
			err := extractIn(t, sb, rawArchive(t, tc.ents...), tc.mode)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, sb)
			}
		})
	}
}

// TestExtractHardlinkTargets: a hard link is a second name for a file
// already extracted from this archive into the target, never for a
// directory, a file outside or one still to come. Linking a device, fifo
// or symlink links that node itself (a symlink is not followed, so it
// stays a link resolved inside the target). In an overlay lower, a link
// to a whiteout would be a whiteout the stream never declared.
func TestExtractHardlinkTargets(t *testing.T) {
	dev := func(name string, typ byte, major, minor int64) ent {
		return ent{name: name, typ: typ, major: major, minor: minor}
	}
	sameInode := func(a, b string) func(t *testing.T, sb sandbox) {
		return func(t *testing.T, sb sandbox) {
			sa, sb2 := lstat(t, filepath.Join(sb.root, a)), lstat(t, filepath.Join(sb.root, b))
			if sa.Ino != sb2.Ino || sa.Mode&unix.S_IFMT != sb2.Mode&unix.S_IFMT {
				t.Errorf("%s and %s are not one inode", a, b)
			}
		}
	}
	cases := []struct {
		name    string
		mode    ExtractMode
		root    bool // needs root to create device nodes
		entries []ent
		wantErr []string
		check   func(t *testing.T, sb sandbox)
	}{
		{name: "char device", root: true, entries: []ent{dev("c", tar.TypeChar, 1, 3), hardlink("h", "c")}, check: sameInode("h", "c")},
		{name: "block device", root: true, entries: []ent{dev("b", tar.TypeBlock, 7, 0), hardlink("h", "b")}, check: sameInode("h", "b")},
		{name: "fifo", entries: []ent{{name: "f", typ: tar.TypeFifo}, hardlink("h", "f")}, check: sameInode("h", "f")},
		{name: "symlink out", entries: []ent{symlink("s", hostAlias+"/host/etc/passwd"), hardlink("h", "s")}, check: func(t *testing.T, sb sandbox) {
			sameInode("h", "s")(t, sb)
			if got, _ := os.Readlink(filepath.Join(sb.root, "h")); got != hostAlias+"/host/etc/passwd" {
				t.Errorf("h -> %q, want the symlink's own target", got)
			}
		}},
		{name: "on-disk symlink out", entries: []ent{hardlink("h", "abs-escape")}, check: sameInode("h", "abs-escape")},
		{name: "directory", entries: []ent{dir("d/"), hardlink("h", "d")}, wantErr: []string{`"h"`, "is a directory"}},
		{name: "root", entries: []ent{hardlink("h", "/")}, wantErr: []string{`"h"`, "is a directory"}},
		{name: "dotdot", entries: []ent{hardlink("h", "../..")}, wantErr: []string{`"h"`, "is a directory"}},
		{name: "outside relative", entries: []ent{hardlink("h", "../outside/secret")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "outside absolute", entries: []ent{hardlink("h", hostAlias+"/outside/secret")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "host file", entries: []ent{hardlink("h", "/etc/passwd")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "through archive symlink", entries: []ent{symlink("e", hostAlias+"/host/etc"), hardlink("h", "e/passwd")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "through on-disk symlink", entries: []ent{hardlink("h", "rel-escape/secret")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "later entry", entries: []ent{hardlink("h", "later"), file("later", "x")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "itself", entries: []ent{hardlink("h", "h")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "flattened whiteout", entries: []ent{file("x", "x"), file(".wh.x", ""), hardlink("h", "x")}, wantErr: []string{`"h"`, "no such file"}},
		{name: "overlay whiteout", mode: OverlayLower, root: true, entries: []ent{file(".wh.x", ""), hardlink("h", "x")}, wantErr: []string{`"h"`, "overlay whiteout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t)
			}
			sb := newSandbox(t)
			err := extractIn(t, sb, makeArchive(t, tc.entries...), tc.mode)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				if present(t, filepath.Join(sb.root, "h")) {
					t.Error("the refused link was created")
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, sb)
			}
		})
	}
}

// TestExtractDeviceNodes pins what device entries become. Run as root,
// the extractor keeps the archive's type, numbers, mode and owner, as
// Docker and containerd do: an image's /dev/null (1:3, 0666) must work
// for a non-root USER of a RUN step. So a hostile image's block device or
// /dev/mem with mode 0666 is on disk as such (char 0:0 too, in a
// flattened tree, where it is not a whiteout). What keeps other local
// users from opening them, and from running an image's setuid-root
// binaries, is that they cannot reach a snapshot: package store keeps its
// directories closed to them (its tests and the e2e suite check that).
func TestExtractDeviceNodes(t *testing.T) {
	requireRoot(t)
	nodes := []ent{
		{name: "dev/sda", typ: tar.TypeBlock, major: 8, minor: 0, mode: 0o666},
		{name: "dev/mem", typ: tar.TypeChar, major: 1, minor: 1, mode: 0o666},
		{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		{name: "dev/setuid-loop", typ: tar.TypeBlock, major: 7, minor: 0, mode: 0o6660},
	}
	check := func(t *testing.T, root string, es []ent) {
		t.Helper()
		for _, e := range es {
			st := lstat(t, filepath.Join(root, e.name))
			typ := uint32(unix.S_IFCHR)
			if e.typ == tar.TypeBlock {
				typ = unix.S_IFBLK
			}
			if st.Mode != typ|uint32(e.mode) || unix.Major(st.Rdev) != uint32(e.major) || unix.Minor(st.Rdev) != uint32(e.minor) || st.Uid != 0 {
				t.Errorf("%s: mode %o dev %d:%d uid %d, want mode %o dev %d:%d uid 0", e.name, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Uid, typ|uint32(e.mode), e.major, e.minor)
			}
		}
	}
	for _, mode := range []ExtractMode{Flatten, OverlayLower} {
		t.Run(modeName(mode), func(t *testing.T) {
			es := nodes
			if mode == Flatten {
				es = append(slices.Clone(nodes), ent{name: "dev/zero-zero", typ: tar.TypeChar, mode: 0o666})
			}
			sb := newSandbox(t)
			if err := extractIn(t, sb, makeArchive(t, es...), mode); err != nil {
				t.Fatal(err)
			}
			check(t, sb.root, es)
		})
	}
}
