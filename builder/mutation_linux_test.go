package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// The mutation suite: every input a step's key covers (see keyInput) and
// every attribute of srcFile is changed in turn, in the context or in the
// Dockerfile. The build after the change, on the store that built the
// unchanged input (warm), must give exactly the image a build of the
// changed input gives in a fresh store (cold): a difference is a wrong
// cache hit (or a non-reproducible build). Each case also says which
// steps must run again and which must stay CACHED: over-caching is the
// disaster, a needless rebuild the smaller bug.

const mutEpoch = 1700000000

// mutConfig is what a build gets besides the context and the Dockerfile.
type mutConfig struct {
	args        map[string]string
	compression layer.Compression
	epoch       int64 // SOURCE_DATE_EPOCH; mutEpoch when zero
	network     executor.NetworkMode
	labels      map[string]string // --label
	hosts       []executor.HostIP // --add-host
	ulimits     []executor.Ulimit // --ulimit
	shmSize     int64             // --shm-size
	secrets     map[string][]byte // --secret
	// dockerignore names the ignore file next to the Dockerfile that replaces .dockerignore.
	dockerignore string
}

// mutCase is one mutation.
type mutCase struct {
	name string
	// real: the Dockerfile RUNs in the sandbox, on a busybox rootfs that
	// the context holds as rootfs.tar.gz.
	real bool
	// files are added to the base context (mutContext); setup runs after.
	files map[string]string
	setup func(t *testing.T, dir string)
	// df is built first; df2 (df when empty) after mutate.
	df, df2    string
	cfg, cfg2  *mutConfig
	mutate     func(t *testing.T, dir string)
	storeSetup func(t *testing.T, b *mutBuilder, after bool)
	// moveContext: after mutate, the context moves to another directory
	// (a CI checkout in a fresh path).
	moveContext bool
	// rerun and cached name steps (substrings of their progress text) that
	// the warm build must run again, or take from the cache.
	rerun, cached []string
	// same: the change is invisible; the warm build must be all CACHED and
	// give the first build's image.
	same bool
	// invisible: the change must re-run a step, but its output does not
	// show the change (so the cold image may equal the first one).
	invisible bool
}

// mutContext is the context every case starts from.
var mutContext = map[string]string{
	".dockerignore": "**/*.log\nignored/\n",
	"one.txt":       "one",
	"other.txt":     "other",
	"src/a.txt":     "aaaaaa",
	"src/b.txt":     "bbbb",
	"src/p":         "pp",
	"src/q":         "pp",
	"src/sub/c.txt": "c",
	"src/link":      "->a.txt",
	"src/app.log":   "ignored by *.log",
	"m/in.txt":      "in",
	"m/d/x.txt":     "x",
	"m/skip.log":    "ignored",
	"ignored/x":     "ignored dir",
}

const fakeDF = "FROM scratch\nCOPY one.txt /one\nCOPY src /src/\n"

const realBase = "FROM scratch\nADD rootfs.tar.gz /\n"

// bindRecorder is a RUN that records what the bind of the context's m
// shows: names, types, modes, owners, sizes, link counts, device numbers,
// link targets and contents (no times: those are deliberately not keyed).
const bindRecorder = `RUN --mount=type=bind,source=m,target=/m cd /m && ` +
	`find . | sort | while read f; do stat -c '%n %F %a %u:%g %s %h %t,%T' "$f"; done > /m.txt && ` +
	`find . -type f | sort | xargs md5sum >> /m.txt && ` +
	`find . -type l | sort | while read f; do echo "$f -> $(readlink "$f")"; done >> /m.txt` + "\n"

// capV2 is a VFS_CAP_REVISION_2 security.capability value: CAP_NET_RAW
// permitted and effective.
var capV2 = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func mutCases() []mutCase {
	p := func(dir, name string) string { return filepath.Join(dir, name) }
	later := time.Unix(mutEpoch+1_000_000, 0)
	return []mutCase{
		// ---- must stay CACHED ----
		{name: "keep/mtime only (after the epoch)", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				for _, n := range []string{"one.txt", "src/a.txt", "src/sub", "src/sub/c.txt", "src"} {
					must(t, os.Chtimes(p(dir, n), later, later))
				}
				lt := unix.NsecToTimespec(later.UnixNano())
				must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p(dir, "src/link"), []unix.Timespec{lt, lt}, unix.AT_SYMLINK_NOFOLLOW))
			}, same: true},
		{name: "keep/file .dockerignore excludes", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{"src/app.log": "changed!", "src/new.log": "new", "src/sub/x.log": "x", "ignored/y": "y"})
			}, same: true},
		{name: "keep/file outside the copied sources", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{"other.txt": "OTHER", "new-top.txt": "n"})
			}, same: true},
		{name: "keep/chown of context files", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, os.Lchown(p(dir, "src/a.txt"), 1234, 5678))
				must(t, os.Lchown(p(dir, "src/sub"), 1, 1))
				must(t, os.Lchown(p(dir, "src/link"), 7, 7))
				must(t, os.Lchown(p(dir, "one.txt"), 1000, 1000))
			}, same: true},
		{name: "keep/xattrs a layer does not keep", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Setxattr(p(dir, "src/a.txt"), "trusted.strata-test", []byte("v"), 0))
				must(t, unix.Setxattr(p(dir, "src/b.txt"), "user.overlay.x", []byte("v"), 0))
			}, same: true},
		{name: "keep/unused --build-arg", df: fakeDF, cfg2: &mutConfig{args: map[string]string{"UNUSED": "x"}}, same: true},
		{name: "keep/comment in the Dockerfile", df: fakeDF,
			df2:  "# a comment\nFROM scratch\n\n# another\nCOPY one.txt /one\n  # indented\nCOPY src /src/\n# trailing\n",
			same: true},
		{name: "keep/LABEL change keeps the COPY after it",
			df:     "FROM scratch\nLABEL l=1\nCOPY one.txt /one\nCOPY src /src/\n",
			df2:    "FROM scratch\nLABEL l=2\nCOPY one.txt /one\nCOPY src /src/\n",
			rerun:  []string{"LABEL l=2"},
			cached: []string{"COPY one.txt /one", "COPY src /src/"}},
		{name: "keep/ENV change keeps the COPY, re-runs the RUN", real: true,
			df:     realBase + "ENV E=1\nCOPY one.txt /one\nRUN env | sort > /env\n",
			df2:    realBase + "ENV E=2\nCOPY one.txt /one\nRUN env | sort > /env\n",
			rerun:  []string{"RUN env"},
			cached: []string{"ADD rootfs", "COPY one.txt /one"}},
		{name: "keep/build arg only a RUN uses", real: true,
			df:     realBase + "ARG V=1\nCOPY one.txt /one\nRUN echo \"$V\" > /v\n",
			cfg2:   &mutConfig{args: map[string]string{"V": "2"}},
			rerun:  []string{"RUN echo"},
			cached: []string{"ADD rootfs", "COPY one.txt /one"}},
		{name: "keep/bind: mtime, chown and ignored file", real: true,
			df: realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) {
				must(t, os.Chtimes(p(dir, "m/in.txt"), later, later))
				must(t, os.Lchown(p(dir, "m/in.txt"), 1000, 1000))
				must(t, os.Lchown(p(dir, "m/d"), 1000, 1000))
				writeCtx(t, dir, map[string]string{"m/new.log": "ignored", "m/skip.log": "changed"})
			}, same: true},
		{name: "keep/RUN after an unrelated LABEL and USER-less metadata", real: true,
			df:     realBase + "LABEL a=1\nEXPOSE 80\nRUN id > /id\n",
			df2:    realBase + "LABEL a=2\nEXPOSE 81\nRUN id > /id\n",
			rerun:  []string{"LABEL a=2", "EXPOSE 81"},
			cached: []string{"ADD rootfs", "RUN id"}},

		{name: "keep/--label change", df: fakeDF,
			cfg2: &mutConfig{labels: map[string]string{"org.example": "2"}}},
		{name: "keep/context moved to another directory", df: fakeDF, moveContext: true, same: true},
		{name: "keep/context moved, with a RUN bind", real: true, df: realBase + bindRecorder, moveContext: true, same: true},
		{name: "keep/USER and SHELL change keep a COPY after them",
			df:     "FROM scratch\nUSER 1000\nSHELL [\"/bin/sh\", \"-c\"]\nCOPY one.txt /one\nCOPY src /src/\n",
			df2:    "FROM scratch\nUSER 1001\nSHELL [\"/bin/bash\", \"-c\"]\nCOPY one.txt /one\nCOPY src /src/\n",
			rerun:  []string{"USER 1001", "SHELL"},
			cached: []string{"COPY one.txt /one", "COPY src /src/"}},
		{name: "keep/CMD, ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL change", real: true,
			df:     realBase + "CMD [\"a\"]\nENTRYPOINT [\"b\"]\nEXPOSE 80\nVOLUME /v\nSTOPSIGNAL SIGTERM\nCOPY one.txt /one\nRUN id > /id\n",
			df2:    realBase + "CMD [\"a2\"]\nENTRYPOINT [\"b2\"]\nEXPOSE 81\nVOLUME /v2\nSTOPSIGNAL SIGKILL\nCOPY one.txt /one\nRUN id > /id\n",
			cached: []string{"ADD rootfs", "COPY one.txt /one", "RUN id"}},

		// ---- context: srcFile attributes, must re-run ----
		{name: "miss/content, same size and mtime", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				fi, err := os.Stat(p(dir, "src/a.txt"))
				must(t, err)
				must(t, os.WriteFile(p(dir, "src/a.txt"), []byte("AAAAAA"), 0o644))
				must(t, os.Chtimes(p(dir, "src/a.txt"), fi.ModTime(), fi.ModTime()))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/two same-size files swap names", df: fakeDF,
			files: map[string]string{"src/p": "p1", "src/q": "q1"},
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Renameat2(unix.AT_FDCWD, p(dir, "src/p"), unix.AT_FDCWD, p(dir, "src/q"), unix.RENAME_EXCHANGE))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/content of a single-file COPY", df: fakeDF,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"one.txt": "ONE"}) },
			rerun:  []string{"COPY one.txt", "COPY src"}},
		{name: "miss/mode of a file", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "src/a.txt"), 0o600)) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/setuid bit", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "src/b.txt"), 0o755|os.ModeSetuid)) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/mode of a directory", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "src/sub"), 0o700)) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/sticky bit on a directory", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "src/sub"), 0o777|os.ModeSticky)) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/file added", df: fakeDF,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/sub/new.txt": "n"}) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/file removed", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Remove(p(dir, "src/b.txt"))) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/file renamed", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Rename(p(dir, "src/b.txt"), p(dir, "src/c.txt"))) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/empty directory added", df: fakeDF,
			mutate: func(t *testing.T, dir string) { must(t, os.Mkdir(p(dir, "src/empty"), 0o755)) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/symlink target (same length)", df: fakeDF,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/link": "->b.txt"}) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/symlink becomes the file it pointed to", df: fakeDF,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/link": "aaaaaa"}) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/file becomes a directory", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/b.txt")))
				writeCtx(t, dir, map[string]string{"src/b.txt/x": "bbbb"})
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/hard links become copies", df: fakeDF,
			setup: func(t *testing.T, dir string) { must(t, os.Link(p(dir, "src/a.txt"), p(dir, "src/h"))) },
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/h")))
				writeCtx(t, dir, map[string]string{"src/h": "aaaaaa"})
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/copies become hard links", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/q")))
				must(t, os.Link(p(dir, "src/p"), p(dir, "src/q")))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/hard link moves to another same-content file", df: fakeDF,
			setup: func(t *testing.T, dir string) { must(t, os.Link(p(dir, "src/p"), p(dir, "src/sub/h"))) },
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/sub/h")))
				must(t, os.Link(p(dir, "src/q"), p(dir, "src/sub/h")))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/device major:minor", df: fakeDF,
			setup: func(t *testing.T, dir string) {
				must(t, unix.Mknod(p(dir, "src/dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
			},
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/dev")))
				must(t, unix.Mknod(p(dir, "src/dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/char device becomes block device", df: fakeDF,
			setup: func(t *testing.T, dir string) {
				must(t, unix.Mknod(p(dir, "src/dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(7, 0))))
			},
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/dev")))
				must(t, unix.Mknod(p(dir, "src/dev"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/fifo becomes an empty file", df: fakeDF,
			setup: func(t *testing.T, dir string) { must(t, unix.Mkfifo(p(dir, "src/fifo"), 0o644)) },
			mutate: func(t *testing.T, dir string) {
				must(t, os.Remove(p(dir, "src/fifo")))
				writeCtx(t, dir, map[string]string{"src/fifo": ""})
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/user xattr value", df: fakeDF,
			setup: func(t *testing.T, dir string) {
				must(t, unix.Setxattr(p(dir, "src/a.txt"), "user.k", []byte("1"), 0))
			},
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Setxattr(p(dir, "src/a.txt"), "user.k", []byte("2"), 0))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/user xattr on a directory", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Setxattr(p(dir, "src/sub"), "user.k", []byte("d"), 0))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/security.capability added", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				must(t, unix.Setxattr(p(dir, "src/b.txt"), "security.capability", capV2, 0))
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/.dockerignore stops excluding a file", df: fakeDF,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{".dockerignore": "ignored/\n"}) },
			rerun:  []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/.dockerignore exception re-includes a file", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{".dockerignore": "**/*.log\n!src/app.log\nignored/\n"})
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/.dockerignore excludes a copied file", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{".dockerignore": "**/*.log\nignored/\nsrc/sub\n"})
			}, rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/wildcard source gains a match", df: "FROM scratch\nCOPY one.txt /one\nCOPY src/*.txt /t/\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/z.txt": "z"}) },
			rerun:  []string{"COPY src/*.txt"}, cached: []string{"COPY one.txt"}},
		{name: "miss/top-level symlinked source retargeted", df: "FROM scratch\nCOPY one.txt /one\nCOPY src/link /l\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/link": "->p"}) },
			rerun:  []string{"COPY src/link"}, cached: []string{"COPY one.txt"}},
		{name: "miss/ADD archive content (same size)", df: "FROM scratch\nCOPY one.txt /one\nADD files.tar /x/\n",
			setup: func(t *testing.T, dir string) {
				must(t, os.WriteFile(p(dir, "files.tar"), makeTarFile(t, "f.txt", "original"), 0o644))
			},
			mutate: func(t *testing.T, dir string) {
				must(t, os.WriteFile(p(dir, "files.tar"), makeTarFile(t, "f.txt", "ORIGINAL"), 0o644))
			}, rerun: []string{"ADD files.tar"}, cached: []string{"COPY one.txt"}},

		// ---- Dockerfile and options, must re-run ----
		{name: "miss/COPY --chmod",
			df: "FROM scratch\nCOPY one.txt /one\nCOPY --chmod=644 src /src/\n", df2: "FROM scratch\nCOPY one.txt /one\nCOPY --chmod=755 src /src/\n",
			rerun: []string{"COPY --chmod=755"}, cached: []string{"COPY one.txt"}},
		{name: "miss/COPY --chown",
			df: "FROM scratch\nCOPY one.txt /one\nCOPY --chown=1:1 src /src/\n", df2: "FROM scratch\nCOPY one.txt /one\nCOPY --chown=2:1 src /src/\n",
			rerun: []string{"COPY --chown=2:1"}, cached: []string{"COPY one.txt"}},
		{name: "miss/COPY --chown by name, the image's passwd changed", real: true,
			df:     realBase + "RUN echo 'u:x:1500:1500::/:/bin/sh' >> /etc/passwd\nCOPY --chown=u one.txt /one\n",
			df2:    realBase + "RUN echo 'u:x:1600:1500::/:/bin/sh' >> /etc/passwd\nCOPY --chown=u one.txt /one\n",
			rerun:  []string{"RUN echo", "COPY --chown=u"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/heredoc content",
			df: "FROM scratch\nCOPY one.txt /one\nCOPY <<EOF /h\nabc\nEOF\n", df2: "FROM scratch\nCOPY one.txt /one\nCOPY <<EOF /h\nabd\nEOF\n",
			rerun: []string{"COPY <<EOF"}, cached: []string{"COPY one.txt"}},
		{name: "miss/ENV used in a COPY destination",
			df: "FROM scratch\nENV D=/d1\nCOPY one.txt /one\nCOPY src $D/\n", df2: "FROM scratch\nENV D=/d2\nCOPY one.txt /one\nCOPY src $D/\n",
			rerun: []string{"COPY src /d2/"}, cached: []string{"COPY one.txt"}},
		{name: "miss/build arg used in a COPY source",
			df:    "FROM scratch\nARG S=one.txt\nCOPY other.txt /other\nCOPY $S /f\n",
			cfg2:  &mutConfig{args: map[string]string{"S": "src/a.txt"}},
			rerun: []string{"COPY src/a.txt /f"}, cached: []string{"COPY other.txt"}},
		{name: "miss/WORKDIR: COPY relative destination",
			df: "FROM scratch\nCOPY other.txt /other\nWORKDIR /w1\nCOPY one.txt rel\n", df2: "FROM scratch\nCOPY other.txt /other\nWORKDIR /w2\nCOPY one.txt rel\n",
			rerun: []string{"WORKDIR /w2", "COPY one.txt rel"}, cached: []string{"COPY other.txt"}},
		{name: "miss/WORKDIR inherited from the base stage: COPY relative destination",
			df:    "FROM scratch AS a\nWORKDIR /w1\nFROM a\nCOPY one.txt rel\n",
			df2:   "FROM scratch AS a\nWORKDIR /w2\nFROM a\nCOPY one.txt rel\n",
			rerun: []string{"WORKDIR /w2", "COPY one.txt rel"}},
		{name: "miss/WORKDIR: RUN's working directory", real: true,
			df:     realBase + "WORKDIR /w1\nRUN pwd > /pwd\n",
			df2:    realBase + "WORKDIR /w2\nRUN pwd > /pwd\n",
			rerun:  []string{"WORKDIR /w2", "RUN pwd"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/WORKDIR that exists: RUN's working directory", real: true,
			df:     realBase + "WORKDIR /etc\nRUN pwd > /pwd\n",
			df2:    realBase + "WORKDIR /bin\nRUN pwd > /pwd\n",
			rerun:  []string{"WORKDIR /bin", "RUN pwd"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/USER: RUN", real: true,
			df:     realBase + "COPY one.txt /one\nUSER 1000\nRUN id > /tmp/id\n",
			df2:    realBase + "COPY one.txt /one\nUSER 0\nRUN id > /tmp/id\n",
			rerun:  []string{"RUN id"},
			cached: []string{"ADD rootfs", "COPY one.txt"}},
		{name: "miss/USER: WORKDIR's owner",
			df:    realBase + "USER 1000\nWORKDIR /w\n",
			df2:   realBase + "USER 1001\nWORKDIR /w\n",
			rerun: []string{"WORKDIR /w"}, cached: []string{"ADD rootfs"}},
		{name: "miss/SHELL", real: true,
			df:     realBase + "SHELL [\"/bin/sh\", \"-c\"]\nRUN echo \"$-\" > /flags\n",
			df2:    realBase + "SHELL [\"/bin/sh\", \"-ec\"]\nRUN echo \"$-\" > /flags\n",
			rerun:  []string{"RUN echo"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/ENV seen by a RUN", real: true,
			df:     realBase + "ENV E=1\nRUN env | sort > /env\n",
			df2:    realBase + "ENV E=2\nRUN env | sort > /env\n",
			rerun:  []string{"RUN env"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --network", real: true,
			df:     realBase + "RUN --network=none cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /net\n",
			df2:    realBase + "RUN --network=default cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /net\n",
			rerun:  []string{"RUN --network=default"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/build --network", real: true,
			df:     realBase + "RUN cut -d: -f1 /proc/net/dev | tr -d ' ' | sort > /net\n",
			cfg:    &mutConfig{network: executor.NetworkNone},
			cfg2:   &mutConfig{network: executor.NetworkHost},
			rerun:  []string{"RUN cut"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: content (same size)", real: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"m/in.txt": "IN"}) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: mode", real: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "m/in.txt"), 0o600)) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: mode of the bound directory", real: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "m"), 0o700)) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: file added", real: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"m/d/new": ""}) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: hard link", real: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { must(t, os.Link(p(dir, "m/in.txt"), p(dir, "m/d/h"))) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: symlink target", real: true,
			df:     realBase + bindRecorder,
			setup:  func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"m/l": "->in.txt"}) },
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"m/l": "->d/x.txt"}) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind: user xattr", real: true, invisible: true,
			df:     realBase + bindRecorder,
			mutate: func(t *testing.T, dir string) { must(t, unix.Setxattr(p(dir, "m/in.txt"), "user.k", []byte("v"), 0)) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind of a single file: content", real: true,
			df:     realBase + "RUN --mount=type=bind,source=m/in.txt,target=/f cat /f > /seen\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"m/in.txt": "IN"}) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/RUN --mount bind from a stage", real: true,
			df:     "FROM scratch AS s\nCOPY src /s/\n" + realBase + "RUN --mount=type=bind,from=s,source=/s,target=/m cat /m/a.txt > /seen\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/a.txt": "AAAAAA"}) },
			rerun:  []string{"COPY src /s/", "RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "miss/COPY --from a stage whose files changed",
			df:     "FROM scratch AS a\nCOPY src /s/\nFROM scratch\nCOPY one.txt /one\nCOPY --from=a /s /x/\n",
			mutate: func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, "src/p"), 0o640)) },
			rerun:  []string{"COPY src /s/", "COPY --from=a"}, cached: []string{"COPY one.txt"}},
		{name: "miss/COPY --from keeps owners", real: true,
			df:     "FROM scratch AS a\nADD rootfs.tar.gz /\nRUN echo x > /f && chown 5:5 /f\nFROM scratch\nCOPY --from=a /f /f\n",
			df2:    "FROM scratch AS a\nADD rootfs.tar.gz /\nRUN echo x > /f && chown 6:6 /f\nFROM scratch\nCOPY --from=a /f /f\n",
			rerun:  []string{"RUN echo x", "COPY --from=a"},
			cached: []string{"ADD rootfs"}},
		{name: "miss/base: FROM a different stage",
			df:    "FROM scratch AS a\nCOPY one.txt /f\nFROM scratch AS b\nCOPY other.txt /f\nFROM a\nCOPY src /src/\n",
			df2:   "FROM scratch AS a\nCOPY one.txt /f\nFROM scratch AS b\nCOPY other.txt /f\nFROM b\nCOPY src /src/\n",
			rerun: []string{"COPY other.txt /f", "COPY src /src/"}},
		{name: "miss/base: a tag in the store moved", df: "FROM mutbase:1\nCOPY src /src/\n",
			storeSetup: func(t *testing.T, b *mutBuilder, after bool) {
				src := "FROM scratch\nCOPY one.txt /f\n"
				if after {
					src = "FROM scratch\nCOPY other.txt /f\n"
				}
				res, _ := b.build(t, src, nil)
				must(t, Tag(b.store, res, []string{"mutbase:1"}))
			},
			rerun: []string{"COPY src /src/"}},
		{name: "miss/ENV expanded in a COPY heredoc",
			df:    "FROM scratch\nENV V=1\nCOPY one.txt /one\nCOPY <<EOF /h\n$V\nEOF\n",
			df2:   "FROM scratch\nENV V=2\nCOPY one.txt /one\nCOPY <<EOF /h\n$V\nEOF\n",
			rerun: []string{"COPY <<EOF"}, cached: []string{"COPY one.txt"}},
		{name: "miss/build arg expanded in a COPY heredoc",
			df:    "FROM scratch\nARG V=1\nCOPY one.txt /one\nCOPY <<EOF /h\n$V\nEOF\n",
			cfg2:  &mutConfig{args: map[string]string{"V": "2"}},
			rerun: []string{"COPY <<EOF"}, cached: []string{"COPY one.txt"}},
		{name: "miss/RUN heredoc script (#!) content", real: true,
			df:     realBase + "COPY one.txt /one\nRUN <<EOF\n#!/bin/sh\necho 1 > /s\nEOF\n",
			df2:    realBase + "COPY one.txt /one\nRUN <<EOF\n#!/bin/sh\necho 2 > /s\nEOF\n",
			rerun:  []string{"RUN <<EOF"},
			cached: []string{"ADD rootfs", "COPY one.txt"}},
		{name: "miss/build arg used by WORKDIR",
			df:    "FROM scratch\nARG W=/w1\nCOPY other.txt /other\nWORKDIR $W\nCOPY one.txt rel\n",
			cfg2:  &mutConfig{args: map[string]string{"W": "/w2"}},
			rerun: []string{"WORKDIR /w2", "COPY one.txt rel"}, cached: []string{"COPY other.txt"}},
		{name: "miss/COPY --from a store image whose tag moved",
			df: "FROM scratch\nCOPY one.txt /one\nCOPY --from=mutbase:1 /f /g\n",
			storeSetup: func(t *testing.T, b *mutBuilder, after bool) {
				src := "FROM scratch\nCOPY one.txt /f\n"
				if after {
					src = "FROM scratch\nCOPY other.txt /f\n"
				}
				res, _ := b.build(t, src, nil)
				must(t, Tag(b.store, res, []string{"mutbase:1"}))
			},
			rerun: []string{"COPY --from=mutbase:1"}, cached: []string{"COPY one.txt"}},
		{name: "miss/RUN --mount bind of the whole context: .dockerignore edited", real: true,
			df:     realBase + "RUN --mount=type=bind,target=/c cd /c && find . -path ./rootfs.tar.gz -prune -o -print | sort > /ls\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{".dockerignore": "ignored/\n"}) },
			rerun:  []string{"RUN --mount"}, cached: []string{"ADD rootfs"}},
		{name: "keep/RUN --mount bind of the whole context: ignored file added", real: true,
			df: realBase + "RUN --mount=type=bind,target=/c cd /c && find . -path ./rootfs.tar.gz -prune -o -print | sort > /ls\n",
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{"new.log": "x", "ignored/new": "y"})
			},
			same: true},
		{name: "miss/ADD URL content (same size, same Last-Modified)",
			df:     "FROM scratch\nCOPY one.txt /one\nADD " + mutHTTP().URL + "/f.txt /f\n",
			setup:  func(t *testing.T, dir string) { mutHTTPBody.Store("served") },
			mutate: func(t *testing.T, dir string) { mutHTTPBody.Store("SERVED") },
			rerun:  []string{"ADD http"}, cached: []string{"COPY one.txt"}},
		{name: "miss/compression", df: fakeDF,
			cfg2:  &mutConfig{compression: layer.Zstd},
			rerun: []string{"COPY one.txt", "COPY src"}},
		{name: "miss/SOURCE_DATE_EPOCH", df: fakeDF,
			cfg2:  &mutConfig{epoch: mutEpoch + 500},
			rerun: []string{"COPY one.txt", "COPY src"}},

		// ---- the features of [6 of 8] ----
		{name: "keep/file COPY --exclude leaves out", df: "FROM scratch\nCOPY one.txt /one\nCOPY --exclude=*.txt src /src/\n",
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{"src/a.txt": "changed", "src/new.txt": "n"})
			},
			same: true},
		{name: "miss/file COPY --exclude keeps", df: "FROM scratch\nCOPY one.txt /one\nCOPY --exclude=*.txt src /src/\n",
			mutate: func(t *testing.T, dir string) { writeCtx(t, dir, map[string]string{"src/p": "PP"}) },
			rerun:  []string{"COPY --exclude"}, cached: []string{"COPY one.txt"}},
		{name: "miss/COPY --exclude pattern", df: "FROM scratch\nCOPY one.txt /one\nCOPY --exclude=*.txt src /src/\n",
			df2:   "FROM scratch\nCOPY one.txt /one\nCOPY --exclude=p src /src/\n",
			rerun: []string{"COPY --exclude"}, cached: []string{"COPY one.txt"}},
		{name: "miss/COPY --parents", df: "FROM scratch\nCOPY one.txt /one\nCOPY src/sub/c.txt /d/\n",
			df2:   "FROM scratch\nCOPY one.txt /one\nCOPY --parents src/sub/c.txt /d/\n",
			rerun: []string{"COPY --parents"}, cached: []string{"COPY one.txt"}},
		{name: "miss/symbolic --chmod", df: "FROM scratch\nCOPY one.txt /one\nCOPY --chmod=u+x src /src/\n",
			df2:   "FROM scratch\nCOPY one.txt /one\nCOPY --chmod=g+x src /src/\n",
			rerun: []string{"COPY --chmod"}, cached: []string{"COPY one.txt"}},
		{name: "miss/Dockerfile.dockerignore appears", df: fakeDF,
			mutate: func(t *testing.T, dir string) {
				writeCtx(t, dir, map[string]string{"Dockerfile.dockerignore": "src/b.txt\n"})
			},
			cfg2:  &mutConfig{dockerignore: "Dockerfile.dockerignore"},
			rerun: []string{"COPY src"}, cached: []string{"COPY one.txt"}},
		{name: "miss/--add-host", df: "FROM scratch\nCOPY one.txt /one\nRUN write /out\n",
			cfg2:  &mutConfig{hosts: []executor.HostIP{{Host: "db", IP: "10.0.0.9"}}},
			rerun: []string{"RUN write"}, cached: []string{"COPY one.txt"}, invisible: true},
		{name: "miss/--ulimit", df: "FROM scratch\nCOPY one.txt /one\nRUN write /out\n",
			cfg2:  &mutConfig{ulimits: []executor.Ulimit{{Name: "nofile", Soft: 1024, Hard: 1024}}},
			rerun: []string{"RUN write"}, cached: []string{"COPY one.txt"}, invisible: true},
		{name: "miss/--shm-size", df: "FROM scratch\nCOPY one.txt /one\nRUN write /out\n",
			cfg2:  &mutConfig{shmSize: 1 << 20},
			rerun: []string{"RUN write"}, cached: []string{"COPY one.txt"}, invisible: true},
		{name: "miss/an optional secret given", df: "FROM scratch\nCOPY one.txt /one\nRUN --mount=type=secret,id=s write /out\n",
			cfg2:  &mutConfig{secrets: map[string][]byte{"s": []byte("v")}},
			rerun: []string{"RUN --mount=type=secret"}, cached: []string{"COPY one.txt"}, invisible: true},
		{name: "keep/a secret's value", df: "FROM scratch\nCOPY one.txt /one\nRUN --mount=type=secret,id=s write /out\n",
			cfg:  &mutConfig{secrets: map[string][]byte{"s": []byte("v1")}},
			cfg2: &mutConfig{secrets: map[string][]byte{"s": []byte("v2")}},
			same: true},
	}
}

// mutHTTP serves mutHTTPBody with a fixed Last-Modified, for ADD URL.
var mutHTTP = sync.OnceValue(func() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Unix(mutEpoch-3600, 0).UTC().Format(http.TimeFormat))
		body, _ := mutHTTPBody.Load().(string)
		io.WriteString(w, body)
	}))
})

var mutHTTPBody atomic.Value

// TestMutationWarmEqualsCold runs the mutation suite.
func TestMutationWarmEqualsCold(t *testing.T) {
	needRoot(t)
	cases := mutCases()
	haveBusybox := true
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		haveBusybox = false
	}
	// Contexts first, then one pause: files whose ctime is over the stat
	// cache's racy window old get their hashes cached by the first build,
	// so the warm build meets the stat cache as a long-lived context does.
	root := t.TempDir()
	dirs := make([]string, len(cases))
	for i, c := range cases {
		needsRootfs := c.real || strings.Contains(c.df+c.df2, "rootfs.tar.gz")
		if needsRootfs && !haveBusybox {
			continue
		}
		dirs[i] = filepath.Join(root, fmt.Sprint(i))
		writeCtx(t, dirs[i], mutContext)
		writeCtx(t, dirs[i], c.files)
		if needsRootfs {
			must(t, os.WriteFile(filepath.Join(dirs[i], "rootfs.tar.gz"), busyboxRootfs(t), 0o644))
		}
		if c.setup != nil {
			c.setup(t, dirs[i])
		}
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	start := time.Now()
	var mu sync.Mutex
	var summary []string
	t.Cleanup(func() {
		slices.Sort(summary)
		t.Logf("%d cases in %v:\n%s", len(summary), time.Since(start).Round(time.Millisecond), strings.Join(summary, "\n"))
	})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if dirs[i] == "" {
				t.Skip("needs busybox-static's /bin/busybox")
			}
			t.Parallel()
			t0 := time.Now()
			verdict := runMutCase(t, c, dirs[i])
			mu.Lock()
			summary = append(summary, fmt.Sprintf("  %-75s %-40s %v", c.name, verdict, time.Since(t0).Round(time.Millisecond)))
			mu.Unlock()
		})
	}
}

// runMutCase builds c's input on a store, mutates, builds again on that
// store and on a fresh one, and compares; it returns a one-line verdict.
func runMutCase(t *testing.T, c mutCase, dir string) string {
	var runner Runner = &fakeRunner{}
	if c.real {
		runner = executor.New(executor.Options{})
	}
	df2, cfg2 := c.df2, c.cfg2
	if df2 == "" {
		df2 = c.df
	}
	if cfg2 == nil {
		cfg2 = c.cfg
	}
	warm := newMutBuilder(t, dir, runner)
	if c.storeSetup != nil {
		c.storeSetup(t, warm, false)
	}
	first, _ := warm.build(t, c.df, c.cfg)
	if len(loadStatCache(warm.store, dir).entries) == 0 {
		t.Errorf("the first build cached no context file's hash: the case does not meet the stat cache")
	}
	if c.mutate != nil {
		c.mutate(t, dir)
	}
	if c.moveContext {
		moved := dir + "-moved"
		must(t, os.Rename(dir, moved))
		dir, warm.dir = moved, moved
	}
	if c.storeSetup != nil {
		c.storeSetup(t, warm, true)
	}
	second, out := warm.build(t, df2, cfg2)
	cold := newMutBuilder(t, dir, runner)
	if c.storeSetup != nil {
		c.storeSetup(t, cold, true)
	}
	want, coldOut := cold.build(t, df2, cfg2)

	verdict := "warm==cold"
	if second.Descriptor.Digest != want.Descriptor.Digest {
		verdict = "WARM!=COLD"
		t.Errorf("WRONG CACHE HIT: warm build %s, cold build %s\n%s\nwarm progress:\n%s\ncold progress:\n%s",
			second.Descriptor.Digest, want.Descriptor.Digest, imageDiff(t, second.Image, want.Image), out, coldOut)
	}
	steps := parseProgress(out)
	var reran, cachedN int
	for _, s := range steps {
		if s.from {
			continue
		}
		if s.cached {
			cachedN++
		} else {
			reran++
		}
	}
	verdict += fmt.Sprintf(" reran=%d cached=%d", reran, cachedN)
	for _, want := range c.rerun {
		checkStep(t, steps, want, false, out)
	}
	for _, want := range c.cached {
		checkStep(t, steps, want, true, out)
	}
	if c.same {
		if reran > 0 {
			t.Errorf("NEEDLESS REBUILD: an invisible change re-ran %d steps:\n%s", reran, out)
		}
		if second.Descriptor.Digest != first.Descriptor.Digest {
			t.Errorf("an invisible change changed the image: %s then %s\n%s", first.Descriptor.Digest, second.Descriptor.Digest, imageDiff(t, first.Image, second.Image))
		}
	} else if !c.invisible && first.Descriptor.Digest == want.Descriptor.Digest {
		t.Errorf("the case tests nothing: the changed input gives the same image %s", want.Descriptor.Digest)
	}
	return verdict
}

func checkStep(t *testing.T, steps []progStep, text string, wantCached bool, out string) {
	t.Helper()
	found := false
	for _, s := range steps {
		if s.from || !strings.Contains(s.text, text) {
			continue
		}
		found = true
		switch {
		case s.cached && !wantCached:
			t.Errorf("WRONG CACHE HIT: step %q was CACHED, it must re-run:\n%s", s.text, out)
		case !s.cached && wantCached:
			t.Errorf("NEEDLESS REBUILD: step %q re-ran, it must stay CACHED:\n%s", s.text, out)
		}
	}
	if !found {
		t.Errorf("no step %q in the progress output:\n%s", text, out)
	}
}

// progStep is one step of the plain progress output.
type progStep struct {
	text   string // without the [k/n] label
	from   bool
	cached bool
	failed bool
}

func parseProgress(out string) []progStep {
	byN := map[string]int{}
	var steps []progStep
	for _, line := range strings.Split(out, "\n") {
		n, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(n, "#") {
			continue
		}
		i, seen := byN[n]
		switch {
		case !seen:
			text := rest
			if _, after, ok := strings.Cut(rest, "] "); ok && strings.HasPrefix(rest, "[") {
				text = after
			}
			byN[n] = len(steps)
			steps = append(steps, progStep{text: text, from: strings.HasPrefix(text, "FROM ")})
		case rest == "CACHED":
			steps[i].cached = true
		case strings.HasPrefix(rest, "ERROR"):
			steps[i].failed = true
		}
	}
	return steps
}

// mutBuilder is a store building contexts in dir.
type mutBuilder struct {
	dir    string
	store  *store.Store
	runner Runner
	built  []*Result
}

func newMutBuilder(t testing.TB, dir string, runner Runner) *mutBuilder {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &mutBuilder{dir: dir, store: st, runner: runner}
}

func (b *mutBuilder) tryBuild(t testing.TB, src string, cfg *mutConfig) (*Result, string, error) {
	t.Helper()
	if cfg == nil {
		cfg = &mutConfig{}
	}
	g, err := dockerfile.Parse([]byte(src), dockerfile.Options{BuildArgs: cfg.args})
	if err != nil {
		t.Fatalf("parsing:\n%s\n%v", src, err)
	}
	epoch := time.Unix(mutEpoch, 0).UTC()
	if cfg.epoch != 0 {
		epoch = time.Unix(cfg.epoch, 0).UTC()
	}
	var ignore *IgnoreFile
	if cfg.dockerignore != "" {
		data, err := os.ReadFile(filepath.Join(b.dir, cfg.dockerignore))
		if err != nil {
			t.Fatal(err)
		}
		ignore = &IgnoreFile{Name: cfg.dockerignore, Data: data}
	}
	var out bytes.Buffer
	res, err := Build(context.Background(), Options{Store: b.store, Graph: g, ContextDir: b.dir, Runner: b.runner,
		Progress: textSink(&out), Epoch: &epoch, Compression: cfg.compression, Network: cfg.network, Labels: cfg.labels,
		ExtraHosts: cfg.hosts, Ulimits: cfg.ulimits, ShmSize: cfg.shmSize, Secrets: cfg.secrets, Dockerignore: ignore})
	if err == nil {
		b.built = append(b.built, res)
	}
	// go-containerregistry's validate reads layers as gzip only.
	if err == nil && (cfg.compression == "" || cfg.compression == layer.Gzip) {
		if verr := validate.Image(res.Image); verr != nil {
			t.Errorf("validate.Image: %v", verr)
		}
	}
	return res, out.String(), err
}

func (b *mutBuilder) build(t testing.TB, src string, cfg *mutConfig) (*Result, string) {
	t.Helper()
	res, out, err := b.tryBuild(t, src, cfg)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return res, out
}

// writeCtx puts files in dir: "->target" makes a symlink, a name ending in
// "/" a directory; an existing file or link is replaced.
func writeCtx(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		content := files[name]
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
			os.Remove(p)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

var busybox struct {
	once sync.Once
	tgz  []byte
	err  error
}

// busyboxRootfs is the busybox minirootfs as a gzipped tar, made once.
func busyboxRootfs(t testing.TB) []byte {
	t.Helper()
	busybox.once.Do(func() {
		dir, err := os.MkdirTemp("", "mut-rootfs-")
		if err != nil {
			busybox.err = err
			return
		}
		defer os.RemoveAll(dir)
		if busybox.err = minirootfs.Make(dir, minirootfs.Options{}); busybox.err != nil {
			return
		}
		var buf bytes.Buffer
		busybox.err = layer.WriteTar(context.Background(), &buf, dir, layer.WriteOptions{Source: layer.FromDir})
		busybox.tgz = buf.Bytes()
	})
	if busybox.err != nil {
		t.Fatal(busybox.err)
	}
	return busybox.tgz
}

// imageDiff says how two images differ: config lines, then the entries of
// the first layers that differ.
func imageDiff(t testing.TB, a, b v1.Image) string {
	t.Helper()
	var w strings.Builder
	ca, _ := a.RawConfigFile()
	cb, _ := b.RawConfigFile()
	if !bytes.Equal(ca, cb) {
		fmt.Fprintf(&w, "configs differ:\n%s", lineDiff(prettyJSON(ca), prettyJSON(cb)))
	}
	la, _ := a.Layers()
	lb, _ := b.Layers()
	if len(la) != len(lb) {
		fmt.Fprintf(&w, "%d layers against %d\n", len(la), len(lb))
	}
	for i := range min(len(la), len(lb)) {
		da, _ := la[i].Digest()
		db, _ := lb[i].Digest()
		if da == db {
			continue
		}
		ea, eb := tarEntries(t, la[i]), tarEntries(t, lb[i])
		fmt.Fprintf(&w, "layer %d differs (%s / %s):\n%s", i, da, db, lineDiff(ea, eb))
	}
	return w.String()
}

func prettyJSON(b []byte) []string {
	s := strings.ReplaceAll(string(b), ",", ",\n")
	return strings.Split(s, "\n")
}

// lineDiff lists the lines only a has (-) and only b has (+).
func lineDiff(a, b []string) string {
	inA, inB := map[string]int{}, map[string]int{}
	for _, l := range a {
		inA[l]++
	}
	for _, l := range b {
		inB[l]++
	}
	var w strings.Builder
	for _, l := range a {
		if inB[l] == 0 {
			fmt.Fprintf(&w, "  - %s\n", l)
		}
	}
	for _, l := range b {
		if inA[l] == 0 {
			fmt.Fprintf(&w, "  + %s\n", l)
		}
	}
	if w.Len() == 0 {
		return "  (same lines, different order or compression)\n"
	}
	return w.String()
}

// tarEntries describes every entry of a layer on one line.
func tarEntries(t testing.TB, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return append(out, "error: "+err.Error())
		}
		sum := sha256.New()
		io.Copy(sum, tr)
		var pax []string
		for k, v := range h.PAXRecords {
			pax = append(pax, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(pax)
		out = append(out, fmt.Sprintf("%s type=%c mode=%o %d:%d size=%d mtime=%d link=%q dev=%d,%d pax=%v sha=%s",
			h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix(), h.Linkname, h.Devmajor, h.Devminor, pax, hex.EncodeToString(sum.Sum(nil))[:12]))
	}
	return out
}
