// Command mkrootfs writes a deterministic busybox minirootfs as a gzipped tarball:
//
//	mkrootfs [-busybox /bin/busybox] [-epoch N] OUT.tar.gz
//
// The tree comes from internal/minirootfs and the tar stream from layer.WriteTar, so the same
// busybox binary always gives the same bytes. The examples and the end-to-end tests use the
// result as the `ADD rootfs.tar.gz /` of a `FROM scratch` image. A busybox of another
// architecture (Debian's arm64 busybox-static on an amd64 host) makes that platform's rootfs;
// its applets are listed by running it through binfmt_misc or qemu-user-static.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/strata-build/strata/internal/minirootfs"
	"github.com/strata-build/strata/layer"
)

// options are mkrootfs's flags and argument.
type options struct {
	busybox string
	epoch   int64
	out     string
}

func main() {
	var o options
	flag.StringVar(&o.busybox, "busybox", minirootfs.DefaultBusybox, "statically linked busybox binary")
	flag.Int64Var(&o.epoch, "epoch", 0, "mtime of every entry, in seconds since the Unix epoch")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: mkrootfs [-busybox /bin/busybox] [-epoch N] OUT.tar.gz")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	o.out = flag.Arg(0)
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "mkrootfs:", err)
		os.Exit(1)
	}
}

// run makes the tree in a temporary directory and writes the tarball next to OUT, renaming it
// into place only when complete so a failed run never leaves a truncated archive behind.
func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "mkrootfs-")
	if err != nil {
		return fmt.Errorf("creating temporary dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "rootfs")
	epoch := time.Unix(o.epoch, 0)
	if err := minirootfs.Make(tree, minirootfs.Options{Busybox: o.busybox, ModTime: epoch}); err != nil {
		return err
	}
	return writeArchive(ctx, tree, o.out, epoch)
}

func writeArchive(ctx context.Context, tree, out string, epoch time.Time) error {
	f, err := os.CreateTemp(filepath.Dir(out), ".mkrootfs-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	defer os.Remove(f.Name())
	if err := compress(ctx, f, tree, epoch); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// compress writes the canonical tar of tree through gzip at a pinned level. The gzip header
// carries no name and no mtime (the zero Header), so only the tree decides the bytes.
func compress(ctx context.Context, f *os.File, tree string, epoch time.Time) error {
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := layer.WriteTar(ctx, zw, tree, layer.WriteOptions{Source: layer.FromDir, Epoch: &epoch}); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Sync()
}
