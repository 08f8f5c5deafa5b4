package attest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/binary"
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

// maxDBTotal bounds the evidence held at once: package databases (distroless status.d
// has one file per package, and a hostile image any number) and Go executables' build
// information, each counted evidenceCost more than its data, so their number is bounded
// too (the scan compares every file against them). A real image's are a few MiB.
const (
	maxDBTotal   = 64 << 20
	evidenceCost = 4 << 10
)

// maxPackages bounds the packages an SBOM lists: a 32 MiB database of two-line stanzas
// would otherwise make a document of millions. The largest real images hold a few
// thousand.
const maxPackages = 50000

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
	pkgs, err := fs.packages()
	if err != nil {
		return Statement{}, err
	}
	doc := spdxDocument(fs, pkgs, subjects, mdig, opts)
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
	held   int64                // goInfo's size in memory, about
	idx    int                  // the layer index that wrote it
}

// cost is what e counts against maxDBTotal.
func (e *evidence) cost() int64 { return int64(len(e.data)) + e.held + evidenceCost }

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
	t := &tree{fs: scanned{}, dirs: map[string]int{}}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ld, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("sbom: layer %d digest: %w", i, err)
		}
		if err := scanLayer(ctx, t, i, ld, l, sp, maxBin); err != nil {
			return nil, fmt.Errorf("sbom: layer %d (%s): %w", i, ld, err)
		}
	}
	return t.fs, nil
}

func scanLayer(ctx context.Context, t *tree, idx int, ld v1.Hash, l v1.Layer, sp *spool, maxBin int64) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	// Checked on every read, not every entry: skipping a huge file (a gzip bomb's) is one
	// long read the build's cancellation must stop.
	tr := tar.NewReader(ctxReader{ctx, rc})
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
			t.remove(strings.TrimSuffix(dir, "/"), idx, true)
			continue
		}
		if name, ok := strings.CutPrefix(base, ".wh."); ok {
			t.remove(dir+name, idx, false)
			continue
		}
		// Anything written at a path replaces what was there (a later entry of the same tar
		// too; a directory replaces a file), and a non-directory hides a lower directory's
		// contents.
		t.drop(p)
		if hdr.Typeflag != tar.TypeDir {
			t.remove(p, idx, true)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if isDBPath(p) {
			if hdr.Size > maxDBSize {
				return fmt.Errorf("%s: %d bytes, more than a package database's %d", p, hdr.Size, maxDBSize)
			}
			if t.live+hdr.Size+evidenceCost > maxDBTotal {
				return fmt.Errorf("%s: package databases of more than %d MiB in one image", p, maxDBTotal>>20)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			s1, s256 := sha1.Sum(data), sha256.Sum256(data)
			t.put(p, &evidence{path: p, layer: ld, data: data, idx: idx,
				sha1: hex.EncodeToString(s1[:]), sha256: hex.EncodeToString(s256[:])})
			continue
		}
		if hdr.Size < 64 || hdr.Size > maxBin {
			continue
		}
		e, err := sp.goBinary(ctx, tr, hdr.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if e != nil {
			if t.live+e.cost() > maxDBTotal {
				return fmt.Errorf("%s: package databases and Go executables of more than %d MiB in one image", p, maxDBTotal>>20)
			}
			e.path, e.layer, e.idx = p, ld, idx
			t.put(p, e)
		}
	}
}

// ctxReader fails its reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// tree is the evidence while the layers are read: live is its cost (see maxDBTotal) and
// dirs counts the evidence below each directory, so that the entries of a layer, each of
// which may hide a lower directory, are not each compared with all the evidence.
type tree struct {
	fs   scanned
	live int64
	dirs map[string]int
}

func (t *tree) put(p string, e *evidence) {
	t.drop(p)
	t.fs[p] = e
	t.live += e.cost()
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		t.dirs[d]++
	}
}

// drop removes the evidence at p, if any.
func (t *tree) drop(p string) {
	e := t.fs[p]
	if e == nil {
		return
	}
	delete(t.fs, p)
	t.live -= e.cost()
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if t.dirs[d]--; t.dirs[d] <= 0 {
			delete(t.dirs, d)
		}
	}
}

// remove drops the evidence layers below idx wrote at p (unless treeOnly) and below it.
func (t *tree) remove(p string, idx int, treeOnly bool) {
	if e := t.fs[p]; !treeOnly && e != nil && e.idx < idx {
		t.drop(p)
	}
	if t.dirs[p] == 0 {
		return
	}
	for k, e := range t.fs {
		if e.idx < idx && strings.HasPrefix(k, p+"/") {
			t.drop(k)
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

// goBinary reads an executable candidate from r (size bytes, at least 64): nil when it is
// no ELF file or no Go program, its build information otherwise.
func (s *spool) goBinary(ctx context.Context, r io.Reader, size int64) (*evidence, error) {
	head := make([]byte, 64)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	if !bytes.Equal(head[:4], elfMagic) {
		return nil, nil
	}
	if !plainELF(head) {
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
	bi, err := readBuildInfo(&budgetReader{ctx: ctx, r: s.f, bytes: 2*size + 1<<20, calls: 1 << 16}, size)
	if err != nil {
		return nil, nil // an ELF file without Go build information: a C program, a library
	}
	return &evidence{goInfo: bi, held: int64(len(bi.String())), sha1: hex.EncodeToString(h1.Sum(nil)), sha256: hex.EncodeToString(h256.Sum(nil))}, nil
}

// plainELF reports whether an ELF header has the program and section header counts of a
// real executable. debug/elf allocates what the counts say (PN_XNUM and SHN_UNDEF with an
// offset extend them to 32 bits: hundreds of MiB for a crafted file) and debug/buildinfo
// walks every program header for each chunk it reads.
func plainELF(h []byte) bool {
	var bo binary.ByteOrder
	switch h[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return false
	}
	var phnum, shnum uint16
	var shoff uint64
	switch h[4] {
	case 1:
		shoff, phnum, shnum = uint64(bo.Uint32(h[32:])), bo.Uint16(h[44:]), bo.Uint16(h[48:])
	case 2:
		shoff, phnum, shnum = bo.Uint64(h[40:]), bo.Uint16(h[56:]), bo.Uint16(h[60:])
	default:
		return false
	}
	// Go's linker writes about 10 program headers and 40 sections.
	return phnum <= 64 && shnum <= 1024 && !(shnum == 0 && shoff != 0)
}

// readBuildInfo is buildinfo.Read made safe for a hostile file: debug/elf "is not designed
// to be hardened against adversarial inputs" and may panic, and buildinfo's search for its
// magic reads the file once per program header mapping it, without end for a crafted one;
// r's budget stops that (a real executable's search reads less than the file once).
func readBuildInfo(r io.ReaderAt, size int64) (bi *buildinfo.BuildInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			bi, err = nil, fmt.Errorf("debug/buildinfo: %v", p)
		}
	}()
	return buildinfo.Read(io.NewSectionReader(r, 0, size))
}

// budgetReader fails reads once they exceed a number of bytes or calls, or ctx is done.
type budgetReader struct {
	ctx          context.Context
	r            io.ReaderAt
	bytes, calls int64
}

var errReadBudget = errors.New("read budget exhausted")

func (b *budgetReader) ReadAt(p []byte, off int64) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.calls--; b.calls < 0 || b.bytes <= 0 {
		return 0, errReadBudget
	}
	n, err := b.r.ReadAt(p, off)
	b.bytes -= int64(n)
	return n, err
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}
