// Command seedimage pushes a base image for bench/run.sh to a plain-HTTP registry: a rootfs
// tarball as the first layer, as it is, and optionally one more layer of host files (the bench
// puts a static benchtool in its bases, for the workloads' RUN steps).
//
//	seedimage -ref 127.0.0.1:5000/debian:bookworm -rootfs debian.tar [-add DEST=SRC]... [-cmd bash]
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// options are seedimage's flags.
type options struct {
	ref    string
	rootfs string
	adds   addList
	cmd    string
	epoch  int64
}

// addList is the repeatable -add DEST=SRC flag.
type addList []string

func (a *addList) String() string     { return strings.Join(*a, ",") }
func (a *addList) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	var o options
	flag.StringVar(&o.ref, "ref", "", "image reference to push (plain HTTP)")
	flag.StringVar(&o.rootfs, "rootfs", "", "rootfs tarball (.tar or .tar.gz), the first layer")
	flag.Var(&o.adds, "add", "DEST=SRC: also put host file SRC at DEST in a second layer; repeatable")
	flag.StringVar(&o.cmd, "cmd", "/bin/sh", "the image's CMD")
	flag.Int64Var(&o.epoch, "epoch", 1700000000, "created time and file mtime, seconds since the epoch")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "seedimage:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ref, err := name.ParseReference(o.ref, name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing -ref: %w", err)
	}
	base, err := tarball.LayerFromFile(o.rootfs)
	if err != nil {
		return fmt.Errorf("reading rootfs: %w", err)
	}
	layers := []v1.Layer{base}
	if len(o.adds) > 0 {
		extra, err := addLayer(o.adds, time.Unix(o.epoch, 0))
		if err != nil {
			return err
		}
		layers = append(layers, extra)
	}
	img, err := image(layers, o)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

func image(layers []v1.Layer, o options) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, fmt.Errorf("adding layers: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	created := v1.Time{Time: time.Unix(o.epoch, 0).UTC()}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS, cfg.Created = "amd64", "linux", created
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{o.cmd}
	for i := range cfg.History {
		cfg.History[i].Created = created
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return mutate.CreatedAt(img, created)
}

// addLayer makes an uncompressed layer of host files, with their parent directories.
func addLayer(adds []string, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, a := range adds {
		dest, src, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("-add %q: want DEST=SRC", a)
		}
		if err := addFile(tw, dirs, strings.TrimPrefix(dest, "/"), src, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

func addFile(tw *tar.Writer, dirs map[string]bool, dest, src string, mtime time.Time) error {
	var parents []string
	for d := path.Dir(dest); d != "." && !dirs[d]; d = path.Dir(d) {
		parents = append([]string{d}, parents...)
		dirs[d] = true
	}
	for _, d := range parents {
		h := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	content, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading -add source: %w", err)
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: dest, Mode: 0o755, Size: int64(len(content)), ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = tw.Write(content)
	return err
}
