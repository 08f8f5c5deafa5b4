package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
	"github.com/strata-build/strata/layer"
)

// TestRealBuild builds FROM scratch + ADD of a busybox rootfs, one RUN in
// the real sandbox and one COPY, then builds again: every step CACHED and
// the same digest.
func TestRealBuild(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	tb := newTestBuild(t, map[string]string{"message.txt": "copied\n"})
	tb.runner = executor.New(executor.Options{})
	epoch := time.Unix(1700000000, 0)
	tb.epoch = &epoch
	writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
	src := `FROM scratch
ADD rootfs.tar.gz /
ARG WHO=strata
RUN echo "hello from $WHO" > /greeting && id -u > /uid
RUN --mount=type=bind,source=message.txt,target=/m --mount=type=cache,target=/var/cache/x cp /m /from-bind && date >> /var/cache/x/log
USER app
RUN id -u > /tmp/app-uid
COPY message.txt /etc/message.txt
CMD ["/bin/cat", "/greeting"]
`
	first, out := tb.mustBuild(src)
	root := rootfs(t, first.Image)
	for p, want := range map[string]string{"greeting": "hello from strata\n", "uid": "0\n", "tmp/app-uid": "1000\n", "etc/message.txt": "copied\n", "from-bind": "copied\n"} {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q\n%s", p, got, err, want, out)
		}
	}
	second, out := tb.mustBuild(src)
	if n := strings.Count(out, "CACHED"); n != 8 {
		t.Errorf("%d steps CACHED, want all 8:\n%s", n, out)
	}
	if first.Descriptor.Digest != second.Descriptor.Digest {
		t.Errorf("digest changed: %s then %s", first.Descriptor.Digest, second.Descriptor.Digest)
	}
	if _, err := os.Stat(filepath.Join(root, "var/cache/x/log")); err == nil {
		t.Error("the cache mount's content went into the image")
	}
	tb.write(map[string]string{"message.txt": "edited\n"})
	third, out := tb.mustBuild(src)
	if got, _ := readImageFile(t, third, "from-bind"); got != "edited\n" {
		t.Errorf("bind mount of an edited file: %q\n%s", got, out)
	}
}

func writeRootfsTarball(t *testing.T, dst string) {
	t.Helper()
	dir := t.TempDir()
	if err := minirootfs.Make(dir, minirootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := layer.WriteTar(context.Background(), f, dir, layer.WriteOptions{Source: layer.FromDir}); err != nil {
		t.Fatal(err)
	}
}

// TestRealBuildReviewFixes runs in the real sandbox what the review found
// broken: a relative context bound into RUN shows the context (not the
// store) without its ignored files, and USER then WORKDIR lets RUN write
// in the new directory.
func TestRealBuildReviewFixes(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	tb := newTestBuild(t, map[string]string{".dockerignore": "secret.key\n", "secret.key": "s", "shown.txt": "x"})
	tb.runner = executor.New(executor.Options{})
	writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
	t.Chdir(tb.dir)
	res, out := tb.mustBuild(`FROM scratch
ADD rootfs.tar.gz /
RUN --mount=type=bind,target=/ctx ls /ctx > /ctx-list
USER 1000
WORKDIR /app
RUN touch x
`, func(o *Options) { o.ContextDir = "." })
	if got, _ := readImageFile(t, res, "ctx-list"); got != "rootfs.tar.gz\nshown.txt\n" {
		t.Errorf("the bound context lists %q\n%s", got, out)
	}
	fi, err := os.Stat(filepath.Join(rootfs(t, res.Image), "app/x"))
	if err != nil {
		t.Fatalf("RUN touch x as USER 1000 in WORKDIR /app: %v\n%s", err, out)
	}
	if uid, _ := ownerIDs(fi); uid != 1000 {
		t.Errorf("app/x owned by %d, want 1000", uid)
	}
}
