package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/layer"
)

// A relative context directory is made absolute before it reaches the
// sandbox, which would resolve it against its own working directory.
func TestRelativeContextBindsTheContext(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	t.Chdir(tb.dir)
	tb.mustBuild(baseDockerfile+"RUN --mount=type=bind,target=/ctx noop\n", func(o *Options) { o.ContextDir = "." })
	spec := tb.runner.(*fakeRunner).runs[0]
	if got := spec.Mounts[0].Source; !filepath.IsAbs(got) {
		t.Errorf("bind source %q is not absolute", got)
	}
	if got, want := tb.runner.(*fakeRunner).binds["/ctx"], listTree(tb.dir); !slices.Equal(got, want) {
		t.Errorf("bind shows %q, the context holds %q", got, want)
	}
}

// A bind of the context shows what COPY would see: no ignored file.
func TestBindMountHonoursDockerignore(t *testing.T) {
	files := map[string]string{".dockerignore": "secret.key\nsub/*.tmp\n", "secret.key": "s", "a.txt": "a", "sub/b": "b", "sub/c.tmp": "c", "link": "->a.txt"}
	for _, tc := range []struct{ source, want string }{
		{".", ".dockerignore a.txt link sub sub/b"},
		{"sub", "b"},
	} {
		t.Run(tc.source, func(t *testing.T) {
			tb := newTestBuild(t, files)
			tb.mustBuild("FROM scratch\nRUN --mount=type=bind,source=" + tc.source + ",target=/ctx noop\n")
			got := tb.runner.(*fakeRunner).binds["/ctx"]
			want := strings.Fields(tc.want)
			if !slices.Equal(got, want) {
				t.Errorf("bind shows %q, want %q", got, want)
			}
		})
	}
}

// A RUN with cache mount options is served from the cache the second
// time: its key holds the options' values, not pointer addresses.
func TestMountOptionsKeepTheCacheKey(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	df := baseDockerfile + "RUN --mount=type=cache,target=/c,mode=0700,uid=1,gid=2 --mount=type=bind,source=src,target=/s noop\n"
	r1, _ := tb.mustBuild(df)
	r2, out := tb.mustBuild(df)
	if n := tb.runner.(*fakeRunner).count(); n != 1 {
		t.Errorf("RUN ran %d times, want once\n%s", n, out)
	}
	if r1.Descriptor.Digest != r2.Descriptor.Digest {
		t.Errorf("digests differ: %s %s", r1.Descriptor.Digest, r2.Descriptor.Digest)
	}
}

// WORKDIR creates a missing directory owned by the current USER, in a
// layer of its own as BuildKit does, so a RUN as that user can write in
// it; an existing directory adds no layer.
func TestWorkdirCreatedForUser(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild(baseDockerfile + "USER app\nWORKDIR /home/app/work\nWORKDIR /real\nWORKDIR /\n")
	root := rootfs(t, res.Image)
	for p, want := range map[string]uint32{"home/app/work": 1000, "home/app": 1000, "real": 0} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if uid, gid := ownerIDs(fi); uid != want || gid != want || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %d:%d %v, want %d:%d 0755", p, uid, gid, fi.Mode(), want, want)
		}
	}
	var got []string
	for _, h := range configOf(t, res.Image).History[1:] {
		got = append(got, fmt.Sprintf("%s empty=%t", h.CreatedBy, h.EmptyLayer))
	}
	want := []string{"USER app empty=true", "WORKDIR /home/app/work empty=false", "WORKDIR /real empty=true", "WORKDIR / empty=true"}
	if !slices.Equal(got, want) {
		t.Errorf("history %q, want %q", got, want)
	}
}

// MAINTAINER sets the config's author, as BuildKit, and no label.
func TestMaintainerSetsAuthor(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild("FROM scratch\nMAINTAINER Jane <jane@example.com>\n")
	cfg := configOf(t, res.Image)
	if cfg.Author != "Jane <jane@example.com>" || len(cfg.Config.Labels) != 0 {
		t.Errorf("author %q, labels %v; want the author and no label", cfg.Author, cfg.Config.Labels)
	}
}

// Wildcards below a symlinked directory resolve it inside the source
// tree, as a chroot would; in the context a link leaving it is an error,
// never a listing of the host's directory.
func TestGlobThroughSymlinkedDir(t *testing.T) {
	files := map[string]string{"stage/root2": "->/", "lnk": "->src", "out": "->/etc"}
	for k, v := range baseFiles {
		files[k] = v
	}
	tb := newTestBuild(t, files)
	res, _ := tb.mustBuild("FROM scratch AS a\nCOPY base/ /\nCOPY stage/ /\nFROM scratch\nCOPY --from=a /root2/etc/pass* /w/\nCOPY lnk/*.txt /y/\n")
	for p, want := range map[string]string{"w/passwd": baseFiles["base/etc/passwd"], "y/a.txt": "A"} {
		if got, err := readImageFile(t, res, p); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", p, got, err, want)
		}
	}
	_, _, err := tb.build("FROM scratch\nCOPY out/pass* /x/\n")
	if err == nil || !strings.Contains(err.Error(), "symlink out points outside the build context") {
		t.Errorf("COPY out/pass*: %v, want the link named as leaving the context", err)
	}
}

// An ADDed archive with an entry an image layer cannot hold as a file (a
// whiteout name, overlayfs's whiteout device) is refused at ADD, naming
// the archive and the entry, and no host path shows in the error.
func TestAddArchiveRefusesWhiteouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  tar.Header
	}{
		{"whiteout name", tar.Header{Name: "d/.wh.gone", Typeflag: tar.TypeReg, Mode: 0o644}},
		{"opaque marker", tar.Header{Name: "d/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644}},
		{"char device 0:0", tar.Header{Name: "d/dev0", Typeflag: tar.TypeChar, Mode: 0o644}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tc.hdr)
			tw.Close()
			tb := newTestBuild(t, map[string]string{"bad.tar": buf.String()})
			_, _, err := tb.build("FROM scratch\nADD bad.tar /x/\n")
			if err == nil || !strings.Contains(err.Error(), "bad.tar") || !strings.Contains(err.Error(), tc.hdr.Name) || strings.Contains(err.Error(), tb.store.Root()) {
				t.Errorf("ADD: %v, want an error naming bad.tar and %s", err, tc.hdr.Name)
			}
		})
	}
}

// A step's error names the instruction once, and a cancelled build says
// it was interrupted.
func TestStepErrorWording(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"abs": "->/etc/passwd"})
	for _, df := range []string{"FROM scratch\nCOPY abs /x\n", "FROM scratch\nCOPY missing.txt /x\n"} {
		_, _, err := tb.build(df)
		if err == nil || strings.Count(err.Error(), "COPY") != 1 {
			t.Errorf("error %q: want COPY named once", err)
		}
	}
	tb.runner = cancelRunner{}
	_, _, err := tb.build("FROM scratch\nRUN noop\n")
	if err == nil || !strings.Contains(err.Error(), "interrupted") || strings.Contains(err.Error(), "context canceled") || !errors.Is(err, context.Canceled) {
		t.Errorf("error %q: want an interruption", err)
	}
}

// cancelRunner fails as the sandbox does when the build is cancelled.
type cancelRunner struct{}

func (cancelRunner) Run(context.Context, executor.Spec) (executor.Result, error) {
	return executor.Result{}, fmt.Errorf("running step: %w", context.Canceled)
}

// Cache mount sharing modes: locked holds the cache directory's lock
// while the RUN runs, private takes a directory of its own when another
// build holds it.
func TestCacheMountSharing(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	lr := &lockRunner{}
	tb.runner = lr
	tb.mustBuild(baseDockerfile + "RUN --mount=type=cache,target=/c,sharing=locked noop\n")
	if lr.src == "" || !lr.busy {
		t.Errorf("sharing=locked: cache %q not locked during the RUN", lr.src)
	}
	shared := lr.src
	held, err := tryLockDir(shared)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	tb.mustBuild(baseDockerfile + "RUN --mount=type=cache,target=/c,sharing=private write x\n")
	if lr.src == shared || lr.src == "" {
		t.Errorf("sharing=private with the cache busy: mounted %q, want a directory of its own", lr.src)
	}
}

// lockRunner records the first mount's source and whether its lock was
// taken while the step ran.
type lockRunner struct {
	src  string
	busy bool
}

func (r *lockRunner) Run(ctx context.Context, spec executor.Spec) (executor.Result, error) {
	r.src = spec.Mounts[0].Source
	f, err := tryLockDir(r.src)
	r.busy = errors.Is(err, unix.EWOULDBLOCK)
	if err == nil {
		f.Close()
	}
	return executor.Result{}, nil
}

// tryLockDir takes the flock a build holds on a cache directory, without waiting.
func tryLockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// COPY --from keeps a file's user.* xattrs and capability, as the layer
// format does.
func TestCopyFromKeepsUserXattrs(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 1, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.user.origin": "test"}})
	tw.Write([]byte("x"))
	tw.Close()
	tb := newTestBuild(t, map[string]string{"x.tar": buf.String()})
	res, _ := tb.mustBuild("FROM scratch AS a\nADD x.tar /\nFROM scratch\nCOPY --from=a /f /g\n")
	val := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(rootfs(t, res.Image), "g"), "user.origin", val)
	if err != nil || string(val[:n]) != "test" {
		t.Errorf("user.origin on the copy: %q %v, want test", val[:max(n, 0)], err)
	}
}

// Context files land as 0:0, so their owner on the host is no part of the
// COPY's cache key: a chown hits the cache.
func TestContextOwnerNotInCacheKey(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	df := "FROM scratch\nCOPY src /s\n"
	tb.mustBuild(df)
	if err := os.Lchown(filepath.Join(tb.dir, "src/a.txt"), 123, 456); err != nil {
		t.Fatal(err)
	}
	if _, out := tb.mustBuild(df); !strings.Contains(out, "CACHED") {
		t.Errorf("COPY rebuilt after a chown of a context file:\n%s", out)
	}
}

// An archive that fails to extract is named with its entry's path in the
// image, never the build's temporary directory.
func TestAddExtractErrorHidesTempDir(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.WriteHeader(&tar.Header{Name: "a/b", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Close()
	tb := newTestBuild(t, map[string]string{"bad.tar": buf.String()})
	_, _, err := tb.build("FROM scratch\nADD bad.tar /x/\n")
	if err == nil || !strings.Contains(err.Error(), "extracting bad.tar") || strings.Contains(err.Error(), tb.store.Root()) {
		t.Errorf("ADD: %v, want bad.tar named and no temporary path", err)
	}
}

// An imported cache mount that cannot be extracted (not a tar, a link out
// of the mount) leaves the mount empty, with a warning naming the cache;
// one that can fills the new mount before the RUN sees it.
func TestCacheMountSeed(t *testing.T) {
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "kept"), []byte("from the cache"), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := newTestBuild(t, baseFiles)
	goodLayer, err := tb.store.WriteLayer(context.Background(), good, layer.WriteOptions{Source: layer.FromDir})
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte("not a tar at all")
	badLayer := layer.New(v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(junk))}, v1.Hash{}, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(junk)), nil
	})
	for _, c := range []struct {
		id   string
		l    *layer.Layer
		want []string
		warn string
	}{
		{"good", goodLayer, []string{"kept"}, ""},
		{"bad", badLayer, nil, "cache reg.example/c:1: cache mount bad left empty"},
	} {
		lr := &listRunner{}
		tb.runner = lr
		_, out := tb.mustBuild(baseDockerfile+"RUN --mount=type=cache,id="+c.id+",target=/c noop\n", func(o *Options) {
			o.CacheMountSeed = func(id string) (*layer.Layer, string) {
				if id == c.id {
					return c.l, "reg.example/c:1"
				}
				return nil, ""
			}
		})
		if !slices.Equal(lr.names, c.want) {
			t.Errorf("cache mount %s held %v, want %v", c.id, lr.names, c.want)
		}
		if c.warn != "" && !strings.Contains(out, c.warn) {
			t.Errorf("no warning %q:\n%s", c.warn, out)
		}
	}
}

// listRunner records the names in the first mount's source.
type listRunner struct{ names []string }

func (r *listRunner) Run(ctx context.Context, spec executor.Spec) (executor.Result, error) {
	des, err := os.ReadDir(spec.Mounts[0].Source)
	for _, de := range des {
		r.names = append(r.names, de.Name())
	}
	return executor.Result{}, err
}
