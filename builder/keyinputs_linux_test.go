package builder

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

func epochPtr(sec int64) *time.Time {
	t := time.Unix(sec, 0).UTC()
	return &t
}

// makeTarFile is a tar archive holding one file.
func makeTarFile(t testing.TB, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(1600000000, 0)}); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// editAfterKey changes the context once the key of the step of kind T is
// known, before the step reads the files: a file edited while the build
// runs.
func editAfterKey[T any](edit func()) func(*Options) {
	return func(o *Options) {
		done := false
		o.afterKey = func(st dockerfile.Step) {
			if _, ok := st.Command.(T); ok && !done {
				done = true
				edit()
			}
		}
	}
}

// TestContextChangedWhileRead edits a file after the step's key is
// computed: the step fails naming the file and stores nothing, so the build
// after the edit is reverted copies the original bytes. The same for a RUN
// bind of the context.
func TestContextChangedWhileRead(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		edit       func(*testBuild) func(*Options)
	}{
		{"COPY", "COPY src /src\n", func(tb *testBuild) func(*Options) {
			return editAfterKey[*instructions.CopyCommand](func() { tb.write(map[string]string{"src/a.txt": "EDITED"}) })
		}},
		{"RUN bind", "RUN --mount=type=bind,source=src,target=/src noop\n", func(tb *testBuild) func(*Options) {
			return editAfterKey[*instructions.RunCommand](func() { tb.write(map[string]string{"src/a.txt": "EDITED"}) })
		}},
		{"ADD archive", "ADD files.tar /x/\n", func(tb *testBuild) func(*Options) {
			return editAfterKey[*instructions.AddCommand](func() { tb.writeTar("files.tar", "other content") })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBuild(t, map[string]string{"src/a.txt": "aaaaaa"})
			tb.writeTar("files.tar", "original")
			_, out, err := tb.build("FROM scratch\n"+tc.step, tc.edit(tb))
			if err == nil || !strings.Contains(err.Error(), "context changed while it was being read: ") {
				t.Fatalf("error %v, want the context-changed error\n%s", err, out)

			}
			// Revert: the next build must not find an entry for the edited bytes.
			tb.write(map[string]string{"src/a.txt": "aaaaaa"})
			tb.writeTar("files.tar", "original")
			_, out = tb.mustBuild("FROM scratch\n" + tc.step)
			if strings.Contains(out, "CACHED") && strings.Contains(lastStep(out), "CACHED") {
				t.Errorf("the step after the failed one was served from the cache:\n%s", out)
			}
		})
	}
}

// lastStep is the progress output from the last step header on.
func lastStep(out string) string {
	i := strings.LastIndex(out, "] ")
	if i < 0 {
		return out
	}
	return out[i:]
}

// writeTar puts a one-file tar archive into the context.
func (tb *testBuild) writeTar(name, content string) {
	tb.t.Helper()
	if err := os.WriteFile(filepath.Join(tb.dir, name), makeTarFile(tb.t, "f.txt", content), 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// TestCopyKeyCoversWhatIsCopied changes one attribute of a context file at a
// time; each must miss the cache and give what a cold build gives.
func TestCopyKeyCoversWhatIsCopied(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, dir string)
		mutate func(t *testing.T, dir string)
	}{
		{"hard links become copies", func(t *testing.T, dir string) {
			must(t, os.Link(filepath.Join(dir, "src/a.txt"), filepath.Join(dir, "src/b.txt")))
		}, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "src/b.txt")))
			must(t, os.WriteFile(filepath.Join(dir, "src/b.txt"), []byte("aaaaaa"), 0o644))
		}},
		{"copies become hard links", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "src/b.txt"), []byte("aaaaaa"), 0o644))
		}, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "src/b.txt")))
			must(t, os.Link(filepath.Join(dir, "src/a.txt"), filepath.Join(dir, "src/b.txt")))
		}},
		{"device numbers", func(t *testing.T, dir string) {
			must(t, unix.Mknod(filepath.Join(dir, "src/dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
		}, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "src/dev")))
			must(t, unix.Mknod(filepath.Join(dir, "src/dev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		}},
		{"user xattr", func(t *testing.T, dir string) {
			must(t, unix.Setxattr(filepath.Join(dir, "src/a.txt"), "user.k", []byte("1"), 0))
		}, func(t *testing.T, dir string) {
			must(t, unix.Setxattr(filepath.Join(dir, "src/a.txt"), "user.k", []byte("2"), 0))
		}},
		{"file capability", func(t *testing.T, dir string) {}, func(t *testing.T, dir string) {
			// VFS_CAP_REVISION_2 with CAP_NET_RAW permitted and effective.
			capv2 := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			capv2[0] = 1 // VFS_CAP_FLAGS_EFFECTIVE
			must(t, unix.Setxattr(filepath.Join(dir, "src/a.txt"), "security.capability", capv2, 0))
		}},
		{"same-size edit", func(t *testing.T, dir string) {}, func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "src/a.txt"), []byte("bbbbbb"), 0o644))
		}},
		{"mode", func(t *testing.T, dir string) {}, func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "src/a.txt"), 0o755))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBuild(t, map[string]string{"src/a.txt": "aaaaaa"})
			tb.epoch = epochPtr(1700000000)
			tc.setup(t, tb.dir)
			df := "FROM scratch\nCOPY src /src\n"
			tb.mustBuild(df)
			tc.mutate(t, tb.dir)
			warm, out := tb.mustBuild(df)
			if strings.Contains(lastStep(out), "CACHED") {
				t.Errorf("the COPY was served from the cache after the change:\n%s", out)
			}
			cold := newTestBuild(t, nil)
			cold.dir, cold.epoch = tb.dir, tb.epoch
			want, _ := cold.mustBuild(df)
			if warm.Descriptor.Digest != want.Descriptor.Digest {
				t.Errorf("warm build %s, cold build %s", warm.Descriptor.Digest, want.Descriptor.Digest)
			}
		})
	}
}

// TestBindShowsContextFilesAsRoot: a RUN bind of the context shows its files
// owned by root, as COPY makes them, whoever owns them on the host; the key
// then rightly ignores a chown.
func TestBindShowsContextFilesAsRoot(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"src/a.txt": "aaaaaa"})
	must(t, os.Chown(filepath.Join(tb.dir, "src/a.txt"), 1234, 5678))
	var owner [2]uint32
	tb.runner.(*fakeRunner).inspect = func(spec executor.Spec) {
		for _, m := range spec.Mounts {
			fi, err := os.Lstat(filepath.Join(m.Source, "a.txt"))
			must(t, err)
			st := fi.Sys().(*syscall.Stat_t)
			owner = [2]uint32{st.Uid, st.Gid}
		}
	}
	tb.mustBuild("FROM scratch\nRUN --mount=type=bind,source=src,target=/src noop\n")
	if owner != [2]uint32{0, 0} {
		t.Errorf("the bind shows a.txt owned by %v, want 0:0", owner)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
