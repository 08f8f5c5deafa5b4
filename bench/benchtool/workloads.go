package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// sizes scale the workloads; fullSizes are the issue's, quickSizes a tenth or less.
type sizes struct {
	srcFiles     int   // W1: files COPY'd
	srcBytes     int64 // W1: their total size
	ignoredFiles int   // W1: files under the .dockerignore'd directory
	ignoredBytes int64
	runFiles     int   // W1: files the RUN writes, half random, half text
	runBytes     int64 // W1: their total size
	w3Bytes      int64 // W3: random bytes, and again as many zeros
}

var (
	fullSizes  = sizes{5000, 100 << 20, 500, 50 << 20, 2000, 200 << 20, 1 << 30}
	quickSizes = sizes{500, 10 << 20, 50, 5 << 20, 200, 20 << 20, 64 << 20}
)

// workloadsOptions are the workloads subcommand's flags and argument.
type workloadsOptions struct {
	quick    bool
	registry string
	rootfs   string
	dir      string
}

// workloadsCmd writes DIR/wN/ctx (the build context), DIR/wN/change and DIR/wN/orig (files
// that, copied over ctx with cp -a, make the "one COPY'd file changed" context and undo it).
func workloadsCmd(args []string) error {
	var o workloadsOptions
	fs := flag.NewFlagSet("workloads", flag.ExitOnError)
	fs.BoolVar(&o.quick, "quick", false, "small sizes, for development")
	fs.StringVar(&o.registry, "registry", "127.0.0.1:5000", "registry holding debian:bookworm and busybox:bench")
	fs.StringVar(&o.rootfs, "rootfs", "", "uncompressed rootfs tarball W2 ADDs")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || o.rootfs == "" {
		return fmt.Errorf("workloads: want -rootfs TAR and one DIR argument")
	}
	o.dir = fs.Arg(0)
	sz := fullSizes
	if o.quick {
		sz = quickSizes
	}
	steps := []func(workloadsOptions, sizes) error{genW0, genW1, genW2, genW3, genW4, genW5, genW6}
	for _, gen := range steps {
		if err := gen(o, sz); err != nil {
			return err
		}
	}
	return nil
}

// writeText writes a small text file with the fixed mtime, creating its directory.
func writeText(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Chtimes(path, fixedTime, fixedTime)
}

// fixDirTimes sets every directory's mtime under root to the fixed time, after the files are
// written (writing a file changes its directory's mtime).
func fixDirTimes(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chtimes(p, fixedTime, fixedTime)
	})
}

// splitSizes divides total over n files with an exponential spread, as real trees have.
func splitSizes(rng *rand.Rand, n int, total int64) []int64 {
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = rng.ExpFloat64()
		sum += w[i]
	}
	out := make([]int64, n)
	for i := range w {
		out[i] = int64(float64(total) * w[i] / sum)
	}
	return out
}

// genTree writes n files totalling bytes under root, one in ten random (assets), the rest
// text (source), 20 to a directory, named by the pattern.
func genTree(root string, rng *rand.Rand, n int, bytes int64, pattern func(i int) string) error {
	for i, size := range splitSizes(rng, n, bytes) {
		kind := "text"
		if i%10 == 9 {
			kind = "random"
		}
		p := filepath.Join(root, pattern(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		if err := writeData(p, kind, size, rng); err != nil {
			return err
		}
	}
	return nil
}

const w1Dockerfile = `FROM %[1]s/debian:bookworm
COPY . /app
RUN benchtool fill -seed 11 -kind random -bytes %[2]d -files %[3]d /var/lib/app/blobs \
 && benchtool fill -seed 12 -kind text -bytes %[2]d -files %[3]d /var/lib/app/text \
 && rm -rf /usr/share/doc /usr/share/man /usr/share/locale /usr/share/info /var/log/apt \
 && chown -R 1000:1000 /var/lib/app
USER 1000:1000
ENTRYPOINT ["/app/bin/start.sh"]
CMD ["--port", "8080"]
`

// genW1 is the CI app: a source tree, an ignored dependency directory, a RUN that writes
// data and deletes from the base, USER, ENTRYPOINT and CMD.
func genW1(o workloadsOptions, sz sizes) error {
	dir := filepath.Join(o.dir, "w1")
	ctx := filepath.Join(dir, "ctx")
	rng := newRand(1)
	src := func(i int) string { return fmt.Sprintf("src/mod%02d/pkg%02d/file%03d.go", i/500, i/20%25, i) }
	if err := genTree(ctx, rng, sz.srcFiles, sz.srcBytes, src); err != nil {
		return err
	}
	mods := func(i int) string { return fmt.Sprintf("node_modules/pkg%03d/index%02d.js", i/10, i%10) }
	if err := genTree(ctx, rng, sz.ignoredFiles, sz.ignoredBytes, mods); err != nil {
		return err
	}
	half := sz.runBytes / 2
	files := map[string]string{
		"Dockerfile":    fmt.Sprintf(w1Dockerfile, o.registry, half, sz.runFiles/2),
		".dockerignore": "node_modules\n",
		"bin/start.sh":  "#!/bin/sh\nexec /app/bin/server \"$@\"\n",
	}
	for name, content := range files {
		if err := writeText(filepath.Join(ctx, name), content); err != nil {
			return err
		}
	}
	if err := changeFile(dir, src(0)); err != nil {
		return err
	}
	return fixDirTimes(ctx)
}

// changeFile saves rel's content under DIR/orig and a changed copy under DIR/change.
func changeFile(dir, rel string) error {
	old, err := os.ReadFile(filepath.Join(dir, "ctx", rel))
	if err != nil {
		return fmt.Errorf("reading %s: %w", rel, err)
	}
	if err := writeText(filepath.Join(dir, "orig", rel), string(old)); err != nil {
		return err
	}
	return writeText(filepath.Join(dir, "change", rel), string(old)+"\n// changed by bench\n")
}

// genW2 is FROM scratch + ADD of a gzip'd rootfs tarball (gzip -n -6: no name or mtime in
// the header, so the same bytes every time); its change appends a file to the tarball.
func genW2(o workloadsOptions, _ sizes) error {
	dir := filepath.Join(o.dir, "w2")
	if err := writeText(filepath.Join(dir, "ctx", "Dockerfile"), "FROM scratch\nADD rootfs.tar.gz /\nCMD [\"/bin/sh\"]\n"); err != nil {
		return err
	}
	for _, sub := range []string{"ctx", "change"} {
		extra := ""
		if sub == "change" {
			extra = "etc/bench-changed"
		}
		tarPath := filepath.Join(dir, sub, "rootfs.tar")
		if err := copyTar(o.rootfs, tarPath, extra); err != nil {
			return err
		}
		if err := gzipFile(tarPath); err != nil {
			return err
		}
	}
	// orig is ctx's tarball (what undoes the change): copied, not compressed again.
	if err := copyFile(filepath.Join(dir, "ctx", "rootfs.tar.gz"), filepath.Join(dir, "orig", "rootfs.tar.gz")); err != nil {
		return err
	}
	return fixDirTimes(filepath.Join(dir, "ctx"))
}

// gzipFile replaces path by path.gz, made by GNU gzip -n -6 (the format users ADD), with the
// fixed mtime.
func gzipFile(path string) error {
	if out, err := exec.Command("gzip", "-n", "-6", "-f", path).CombinedOutput(); err != nil {
		return fmt.Errorf("gzip -n -6 %s: %w: %s", path, err, out)
	}
	return os.Chtimes(path+".gz", fixedTime, fixedTime)
}

// copyFile copies src to dst (creating its directory) with the fixed mtime.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return os.Chtimes(dst, fixedTime, fixedTime)
}

// copyTar copies the tar archive from src to dst entry by entry, appending a small file named
// extra when it is not empty.
func copyTar(src, dst, extra string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dst), err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	if err := copyEntries(tar.NewReader(in), tar.NewWriter(out), extra); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, fixedTime, fixedTime)
}

func copyEntries(tr *tar.Reader, tw *tar.Writer, extra string) error {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if extra != "" {
		body := "changed by bench\n"
		h := &tar.Header{Name: extra, Mode: 0o644, Size: int64(len(body)), ModTime: fixedTime, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	return tw.Close()
}

const w3Dockerfile = `FROM %[1]s/busybox:bench
RUN mkdir /data && benchtool fill -seed 3 -kind random -bytes %[2]d /data/random.bin \
 && benchtool fill -kind zero -bytes %[2]d /data/zeros.bin
`

// genW3 is one RUN writing incompressible data and as many zeros; it has no COPY to change.
func genW3(o workloadsOptions, sz sizes) error {
	ctx := filepath.Join(o.dir, "w3", "ctx")
	if err := writeText(filepath.Join(ctx, "Dockerfile"), fmt.Sprintf(w3Dockerfile, o.registry, sz.w3Bytes)); err != nil {
		return err
	}
	return fixDirTimes(ctx)
}

// genW4 is 40 small steps cycling RUN, ENV and COPY; its change is the COPY'd file nearest
// the middle, so about half the steps rebuild.
func genW4(o workloadsOptions, _ sizes) error {
	dir := filepath.Join(o.dir, "w4")
	ctx := filepath.Join(dir, "ctx")
	rng := newRand(4)
	if err := os.MkdirAll(filepath.Join(ctx, "files"), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", ctx, err)
	}
	var df strings.Builder
	fmt.Fprintf(&df, "FROM %s/busybox:bench\n", o.registry)
	changed := ""
	for i := 1; i <= 40; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&df, "ENV STEP_%02d=value-%02d\n", i, i)
		case 1:
			fmt.Fprintf(&df, "RUN mkdir -p /steps && echo step %d > /steps/run-%02d.txt\n", i, i)
		default:
			name := fmt.Sprintf("files/step-%02d.txt", i)
			if err := writeData(filepath.Join(ctx, name), "text", int64(1024+rng.IntN(4096)), rng); err != nil {
				return err
			}
			fmt.Fprintf(&df, "COPY %s /steps/\n", name)
			if changed == "" && i >= 20 {
				changed = name
			}
		}
	}
	if err := writeText(filepath.Join(ctx, "Dockerfile"), df.String()); err != nil {
		return err
	}
	if err := changeFile(dir, changed); err != nil {
		return err
	}
	return fixDirTimes(ctx)
}

// The fixed-cost workloads' step counts: the report divides the time they add to W0 by them.
const (
	w5Steps = 200 // metadata steps
	w6Steps = 50  // RUN true steps
)

// genFixed writes a workload of FROM busybox:bench, the steps, and CMD: W0 (no steps) is the
// baseline the per-step costs of W5 and W6 are measured from.
func genFixed(o workloadsOptions, name string, steps []string) error {
	ctx := filepath.Join(o.dir, name, "ctx")
	df := fmt.Sprintf("FROM %s/busybox:bench\n", o.registry) + strings.Join(steps, "") + "CMD [\"sh\"]\n"
	if err := writeText(filepath.Join(ctx, "Dockerfile"), df); err != nil {
		return err
	}
	return fixDirTimes(ctx)
}

// genW0 is FROM + CMD only.
func genW0(o workloadsOptions, _ sizes) error { return genFixed(o, "w0", nil) }

// genW5 is w5Steps metadata steps cycling ENV, LABEL, ARG and USER: none writes a file (no
// WORKDIR, which creates its directory), so each costs only the builder's per-step overhead.
func genW5(o workloadsOptions, _ sizes) error {
	var steps []string
	for i := 1; i <= w5Steps; i++ {
		switch i % 4 {
		case 0:
			steps = append(steps, fmt.Sprintf("ENV META_%03d=value-%03d\n", i, i))
		case 1:
			steps = append(steps, fmt.Sprintf("LABEL bench.step%03d=\"value %03d\"\n", i, i))
		case 2:
			steps = append(steps, fmt.Sprintf("ARG ARG_%03d=value-%03d\n", i, i))
		default:
			steps = append(steps, fmt.Sprintf("USER %d:%d\n", 1000+i, 1000+i))
		}
	}
	return genFixed(o, "w5", steps)
}

// genW6 is w6Steps RUN true: the fixed cost of starting a sandbox and committing its (empty)
// change.
func genW6(o workloadsOptions, _ sizes) error {
	steps := make([]string, w6Steps)
	for i := range steps {
		steps[i] = "RUN true\n"
	}
	return genFixed(o, "w6", steps)
}
