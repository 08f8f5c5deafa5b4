package attest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SBOMOptions tunes SBOM.
type SBOMOptions struct {
	// Created is the document's creationInfo.created: the epoch with SOURCE_DATE_EPOCH,
	// the build's end otherwise. Required.
	Created time.Time
	// Creator names the tool ("strata-v1.2.0"), listed as "Tool: <Creator>".
	Creator string
	// TempDir is where an executable is spooled while its Go build information is read;
	// "" is os.TempDir().
	TempDir string
	// MaxBinarySize bounds the executables read for Go build information (default 512
	// MiB); a larger one is not looked into.
	MaxBinarySize int64
}

// Package database files are kept whole while the layers are read; one larger than this
// is refused rather than read into memory (a real dpkg status is a few MiB).
const maxDBSize = 32 << 20

// SBOM makes the SPDX statement of an image: the packages its final filesystem holds, as
// BuildKit's default scanner (syft) reports them: Debian and Ubuntu packages
// (var/lib/dpkg/status, distroless var/lib/dpkg/status.d/*), Alpine packages
// (lib/apk/db/installed) and the Go modules built into Go executables (main module,
// dependencies, standard library). It reads the layers in order, honouring OCI whiteouts,
// so a file a later layer deletes is not reported; memory stays small whatever the
// image's size: layers are streamed, only the package databases are kept, executables
// are spooled to a temporary file.
func SBOM(ctx context.Context, subjects []Subject, img v1.Image, opts SBOMOptions) (Statement, error) {
	if opts.Created.IsZero() {
		return Statement{}, errors.New("sbom: no creation time (pass SOURCE_DATE_EPOCH or the build's time)")
	}
	fs, err := scanImage(ctx, img, opts)
	if err != nil {
		return Statement{}, err
	}
	mdig, err := img.Digest()
	if err != nil {
		return Statement{}, fmt.Errorf("sbom: image digest: %w", err)
	}
	doc := spdxDocument(fs, subjects, mdig, opts)
	return newStatement(PredicateSPDX, subjects, doc)
}

// evidence is a file packages were found in, as the final filesystem has it.
type evidence struct {
	path   string // without leading slash
	layer  v1.Hash
	sha1   string
	sha256 string
	data   []byte               // a package database or os-release
	goInfo *buildinfo.BuildInfo // a Go executable
	idx    int                  // the layer index that wrote it
}

// scanned is the final filesystem's evidence files, keyed by path.
type scanned map[string]*evidence

func isDBPath(p string) bool {
	switch p {
	case "var/lib/dpkg/status", "lib/apk/db/installed", "etc/os-release", "usr/lib/os-release":
		return true
	}
	dir, base := path.Split(p)
	return dir == "var/lib/dpkg/status.d/" && base != "" && !strings.Contains(base, ".")
}

func scanImage(ctx context.Context, img v1.Image, opts SBOMOptions) (scanned, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("sbom: image layers: %w", err)
	}
	maxBin := opts.MaxBinarySize
	if maxBin <= 0 {
		maxBin = 512 << 20
	}
	sp := &spool{dir: opts.TempDir}
	defer sp.close()
	fs := scanned{}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ld, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("sbom: layer %d digest: %w", i, err)
		}
		if err := scanLayer(ctx, fs, i, ld, l, sp, maxBin); err != nil {
			return nil, fmt.Errorf("sbom: layer %d (%s): %w", i, ld, err)
		}
	}
	return fs, nil
}

func scanLayer(ctx context.Context, fs scanned, idx int, ld v1.Hash, l v1.Layer, sp *spool, maxBin int64) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Clean("/" + hdr.Name)[1:]
		if p == "" {
			continue
		}
		dir, base := path.Split(p)
		if base == ".wh..wh..opq" {
			// An opaque directory hides what lower layers put in it, not this layer's files.
			fs.remove(strings.TrimSuffix(dir, "/"), idx, true)
			continue
		}
		if name, ok := strings.CutPrefix(base, ".wh."); ok {
			fs.remove(dir+name, idx, false)
			continue
		}
		// Anything written at a path replaces what was there (a later entry of the same tar
		// too), and a non-directory hides a lower directory's contents.
		if hdr.Typeflag != tar.TypeDir {
			delete(fs, p)
		}
		if hdr.Typeflag != tar.TypeDir {
			fs.remove(p, idx, true)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if isDBPath(p) {
			if hdr.Size > maxDBSize {
				return fmt.Errorf("%s: %d bytes, more than a package database's %d", p, hdr.Size, maxDBSize)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			s1, s256 := sha1.Sum(data), sha256.Sum256(data)
			fs[p] = &evidence{path: p, layer: ld, data: data, idx: idx,
				sha1: hex.EncodeToString(s1[:]), sha256: hex.EncodeToString(s256[:])}
			continue
		}
		if hdr.Size < 64 || hdr.Size > maxBin {
			continue
		}
		e, err := sp.goBinary(tr, hdr.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if e != nil {
			e.path, e.layer, e.idx = p, ld, idx
			fs[p] = e
		}
	}
}

// remove drops the evidence at p, and below it when tree, that layers below idx wrote.
func (fs scanned) remove(p string, idx int, treeOnly bool) {
	for k, e := range fs {
		if e.idx >= idx {
			continue
		}
		if (!treeOnly && k == p) || strings.HasPrefix(k, p+"/") {
			delete(fs, k)
		}
	}
}

// spool holds one reusable temporary file for executables: debug/buildinfo needs random
// access, a tar stream has none, and memory must not grow with the binary.
type spool struct {
	dir string
	f   *os.File
}

var elfMagic = []byte("\x7fELF")

// goBinary reads an executable candidate from r: nil when it is no ELF file or no Go
// program, its build information otherwise.
func (s *spool) goBinary(r io.Reader, size int64) (*evidence, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	if !bytes.Equal(head, elfMagic) {
		return nil, nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "strata-sbom-*")
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.f = f
	}
	if err := s.f.Truncate(0); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	h1, h256 := sha1.New(), sha256.New()
	w := io.MultiWriter(io.NewOffsetWriter(s.f, 0), h1, h256)
	if _, err := w.Write(head); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	bi, err := buildinfo.Read(io.NewSectionReader(s.f, 0, size))
	if err != nil {
		return nil, nil // an ELF file without Go build information: a C program, a library
	}
	return &evidence{goInfo: bi, sha1: hex.EncodeToString(h1.Sum(nil)), sha256: hex.EncodeToString(h256.Sum(nil))}, nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
