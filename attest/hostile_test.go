package attest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestProvenanceMinHidesArgValues: mode=min leaves a build arg's value out entirely, the
// invocation id included: an id hashed from a token would let anyone holding the
// Dockerfile confirm a guess of it. Two min builds differing only in a value give the same
// bytes.
func TestProvenanceMinHidesArgValues(t *testing.T) {
	var got [][]byte
	for _, v := range []string{"1234", "5678"} {
		info := testInfo(t)
		info.Args = map[string]string{"PIN": v}
		info.Labels = map[string]string{"secret.label": v}
		st, err := Provenance(nil, info)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("mode=min holds the build arg's value %q: %s", v, b)
		}
		got = append(got, b)
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Errorf("mode=min statements of builds differing only in a build arg's value differ:\n%s\n%s", got[0], got[1])
	}
}

// TestProvenanceRedactsEverywhere: credentials in a URL never reach a statement, whether
// the URL parses or not (a stray '%' in a token), and in mode=max's build steps too (an
// ADD URL's source).
func TestProvenanceRedactsEverywhere(t *testing.T) {
	for _, version := range []string{"v1", "v0.2"} {
		info := testInfo(t)
		info.Mode, info.SLSAVersion = "max", version
		info.Context, info.ContextDigest = "https://oauth2:tok1%zz@git.example.com/org/repo.git#main", strings.Repeat("c", 40)
		info.VCSSource = "https://tok2%@git.example.com/org/repo.git"
		info.BuilderID = "https://ci:tok7@ci.example.com/run/1"
		info.Materials = append(info.Materials, Material{URI: "https://user:tok3%x@example.com/a.tgz", Digest: map[string]string{"sha256": strings.Repeat("d", 64)}})
		info.Steps = append(info.Steps,
			Step{CopySrc: []string{"https://user:tok4@example.com/a.tgz", "https://tok5@example.com/b.tgz"}, CopyDest: "/", Inputs: []int{1}},
			Step{Source: "https://tok6%@example.com/c.tgz"})
		st, err := Provenance(nil, info)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		for i := 1; i <= 7; i++ {
			if tok := fmt.Sprintf("tok%d", i); bytes.Contains(b, []byte(tok)) {
				t.Errorf("%s: %s reached the statement: %s", version, tok, b)
			}
		}
		if !bytes.Contains(b, []byte("git.example.com/org/repo.git")) || !bytes.Contains(b, []byte("example.com/a.tgz")) {
			t.Errorf("%s: redaction lost the URLs themselves: %s", version, b)
		}
	}
}

// TestProvenanceRemoteContextWithoutDigest: a git context whose commit is not known is an
// input nothing pins: the statement must not call its materials complete (nor the build
// hermetic), as it does when the commit is there.
func TestProvenanceRemoteContextWithoutDigest(t *testing.T) {
	info := testInfo(t)
	info.Context = "https://github.com/org/repo.git#main"
	st, err := Provenance(nil, info)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, st)
	if get(t, m, "predicate", "runDetails", "metadata", "buildkit_completeness", "resolvedDependencies") != false {
		t.Error("a remote context without its digest: materials called complete")
	}
	if get(t, m, "predicate", "runDetails", "metadata", "buildkit_hermetic") != nil {
		t.Error("a remote context without its digest: build called hermetic")
	}
}

// TestSBOMDuplicateStanzas: a package database listing a package twice (a malformed or
// hostile dpkg status, a Go binary with a module repeated) still gives an SBOM whose SPDX
// ids are unique, as SPDX requires and tools-golang's validation checks; the package is
// listed once.
func TestSBOMDuplicateStanzas(t *testing.T) {
	stanza := "Package: dup\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\n"
	img := imageOf(t, layerOf(t, entry{name: "var/lib/dpkg/status", data: []byte(stanza + stanza + "Package: other\nVersion: 2\n")}))
	st, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Packages []struct {
			Name   string `json:"name"`
			SPDXID string `json:"SPDXID"`
		} `json:"packages"`
		Relationships []spdxRelation `json:"relationships"`
	}
	if err := json.Unmarshal(st.Predicate, &doc); err != nil {
		t.Fatal(err)
	}
	ids, dups := map[string]bool{}, 0
	for _, p := range doc.Packages {
		if ids[p.SPDXID] {
			t.Errorf("SPDX id %s twice", p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.Name == "dup" {
			dups++
		}
	}
	if dups != 1 {
		t.Errorf("package dup listed %d times, want once", dups)
	}
	rels := map[spdxRelation]bool{}
	for _, r := range doc.Relationships {
		if rels[r] {
			t.Errorf("relationship %+v twice", r)
		}
		rels[r] = true
	}
}

// TestSBOMDatabaseBudget: package databases are held in memory while the layers are read;
// however many a hostile image holds (distroless status.d takes any number of files),
// their total is bounded and the SBOM fails saying so, rather than the build growing
// without bound.
func TestSBOMDatabaseBudget(t *testing.T) {
	big := bytes.Repeat([]byte("Package: x\nVersion: 1\n\n"), maxDBSize/24)
	var files []entry
	for i := 0; i*len(big) <= maxDBTotal; i++ {
		files = append(files, entry{name: fmt.Sprintf("var/lib/dpkg/status.d/p%d", i), data: big})
	}
	img := imageOf(t, layerOf(t, files...))
	_, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "package databases") {
		t.Fatalf("%d status.d files of %d bytes: err = %v, want the budget refused", len(files), len(big), err)
	}
	// Files replaced by later layers do not count: only what the image holds at once.
	big = append([]byte("Package: x\nVersion: 1\nDescription: d\n"), bytes.Repeat([]byte(" a continuation line\n"), maxDBSize/22)...)
	var layers = []entry{{name: "var/lib/dpkg/status.d/p", data: big}}
	img = imageOf(t, layerOf(t, layers...), layerOf(t, layers...), layerOf(t, layers...), layerOf(t, layers...))
	if _, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()}); err != nil {
		t.Errorf("one database rewritten by four layers: %v", err)
	}
}

// TestSBOMPackageLimit: a database of millions of tiny stanzas (32 MiB of two-line ones)
// fails the SBOM quickly, naming the file, instead of a document of millions of packages.
func TestSBOMPackageLimit(t *testing.T) {
	var b bytes.Buffer
	for i := 0; b.Len() < maxDBSize-64; i++ {
		fmt.Fprintf(&b, "P:p%d\nV:1\n\n", i)
	}
	img := imageOf(t, layerOf(t, entry{name: "lib/apk/db/installed", data: b.Bytes()}))
	_, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "/lib/apk/db/installed") {
		t.Fatalf("err = %v, want the package limit naming the database", err)
	}
}

// mappedELF is a crafted 64-bit ELF file of phnum program headers that each map the whole
// file at the next address, the first a writable PT_LOAD as large as all of them: debug/
// buildinfo then searches phnum copies of the file for its magic, without end for a few
// MiB of input.
func mappedELF(phnum int) []byte {
	size := 64 + phnum*56
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], uint16(phnum))
	for i := 0; i < phnum; i++ {
		ph := b[64+i*56:]
		le.PutUint32(ph[0:], uint32(elf.PT_LOAD))
		le.PutUint32(ph[4:], uint32(elf.PF_W|elf.PF_R))
		le.PutUint64(ph[16:], uint64(i*size)) // p_vaddr
		le.PutUint64(ph[32:], uint64(size))   // p_filesz
		le.PutUint64(ph[40:], uint64(size))   // p_memsz
	}
	le.PutUint64(b[64+40:], uint64(phnum*size))
	return b
}

// TestSBOMCraftedELF: an executable crafted to make debug/buildinfo read without end (the
// same bytes mapped by thousands of program headers) is passed over in moments, and the
// image's real Go program is still reported.
func TestSBOMCraftedELF(t *testing.T) {
	bin := goBinary(t)
	evil := mappedELF(65535)
	few := mappedELF(60)
	few = append(few, make([]byte, 8<<20)...) // under any header limit, 480 MiB of search
	img := imageOf(t, layerOf(t,
		entry{name: "usr/bin/evil", mode: 0o755, data: evil},
		entry{name: "usr/bin/few", mode: 0o755, data: few},
		entry{name: "usr/local/bin/hello", mode: 0o755, data: bin},
	))
	done := make(chan []byte, 1)
	start := time.Now()
	go func() {
		st, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
		if err != nil {
			t.Error(err)
		}
		done <- st.Predicate
	}()
	select {
	case doc := <-done:
		if !bytes.Contains(doc, []byte("pkg:golang/github.com/docker/go-units@v0.5.0")) {
			t.Errorf("the real Go program is not reported: %s", doc)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the SBOM took %v", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the SBOM of an image holding a crafted ELF file runs for more than 30s")
	}
}

// TestSBOMSymlinkedDatabase: a package database that is a symlink (absolute, or climbing
// out with ..) is not followed out of the image: the SBOM is made from the layers' bytes
// alone, never from this machine's files, even where the link names a database here.
func TestSBOMSymlinkedDatabase(t *testing.T) {
	host := filepath.Join(t.TempDir(), "installed")
	if err := os.WriteFile(host, []byte("P:hostpkg\nV:1.0-r0\nA:x86_64\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, target := range map[string]string{"lib/apk/db/installed": host, "var/lib/dpkg/status": "../../../../../../../../" + host} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	st, err := SBOM(context.Background(), nil, imageOf(t, l), SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st.Predicate, []byte("hostpkg")) {
		t.Errorf("the SBOM read a database of this machine through a symlink: %s", st.Predicate)
	}
}

// TestSBOMDirectoryReplacesDatabase: a later layer that makes a directory where a package
// database was has removed the database (overlayfs shows the directory): its packages are
// not reported.
func TestSBOMDirectoryReplacesDatabase(t *testing.T) {
	img := imageOf(t,
		layerOf(t, entry{name: "var/lib/dpkg/status", data: []byte("Package: gone\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n")}),
		layerOf(t, entry{name: "var/lib/dpkg/status", dir: true}))
	st, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st.Predicate, []byte(`"gone"`)) {
		t.Errorf("a database a directory replaced is reported: %s", st.Predicate)
	}
}

// TestProvenanceProxyArgs: the proxy build args docker keeps out of an image's history
// (they often hold credentials) are, as BuildKit records them, in mode=max's request with
// their values, and absent from mode=min: what README and --help warn of.
func TestProvenanceProxyArgs(t *testing.T) {
	for _, mode := range []string{"min", "max"} {
		info := testInfo(t)
		info.Mode = mode
		info.Args = map[string]string{"HTTP_PROXY": "http://proxyuser:proxypass@proxy:3128"}
		st, err := Provenance(nil, info)
		if err != nil {
			t.Fatal(err)
		}
		args, _ := get(t, decode(t, st), "predicate", "buildDefinition", "externalParameters", "request", "args").(map[string]any)
		if got, want := args["build-arg:HTTP_PROXY"] != nil, mode == "max"; got != want {
			t.Errorf("mode=%s: build-arg:HTTP_PROXY recorded %v, want %v (as BuildKit)", mode, got, want)
		}
		if mode == "min" && bytes.Contains(st.Predicate, []byte("proxypass")) {
			t.Errorf("mode=min holds the proxy's password: %s", st.Predicate)
		}
	}
}

// TestProvenanceLocalNamedContexts: a --build-context NAME=DIR is a local input nothing
// pins: the request lists it among its locals, as BuildKit does, and a build from a
// pinned git context that also reads one does not call its materials complete.
func TestProvenanceLocalNamedContexts(t *testing.T) {
	info := testInfo(t)
	info.Context, info.ContextDigest = "https://github.com/org/repo.git#main", strings.Repeat("c", 40)
	info.Locals = []string{"vendor", "base"}
	st, err := Provenance(nil, info)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, st)
	if get(t, m, "predicate", "runDetails", "metadata", "buildkit_completeness", "resolvedDependencies") != false {
		t.Error("a local named context: materials called complete")
	}
	locals, _ := json.Marshal(get(t, m, "predicate", "buildDefinition", "externalParameters", "request", "locals"))
	if string(locals) != `[{"name":"base"},{"name":"vendor"}]` {
		t.Errorf("locals = %s, want base and vendor, sorted", locals)
	}
}

// bombLayer is a layer whose tar holds one file of a terabyte of zeros, made on the fly:
// the uncompressed stream a small gzip bomb gives.
type bombLayer struct{}

func (bombLayer) Digest() (v1.Hash, error) { return v1.NewHash("sha256:" + strings.Repeat("b", 64)) }
func (bombLayer) DiffID() (v1.Hash, error) { return v1.NewHash("sha256:" + strings.Repeat("c", 64)) }
func (bombLayer) Compressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("not compressed")
}
func (bombLayer) Size() (int64, error)                { return 1, nil }
func (bombLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }
func (bombLayer) Uncompressed() (io.ReadCloser, error) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644})
	return io.NopCloser(io.MultiReader(&hdr, zeros{})), nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSBOMCancelInsideHugeFile: a layer holding a file of a terabyte (a gzip bomb's
// stream) keeps the scan skipping it; cancelling the build (Ctrl-C) stops it at once.
func TestSBOMCancelInsideHugeFile(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, bombLayer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := SBOM(ctx, nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the context's", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the SBOM went on reading a terabyte file for 10s after its context ended")
	}
}

// TestSBOMManyEntriesStayLinear: every file of a layer may hide a lower directory; with
// thousands of databases held (distroless status.d) and a layer of 100000 files, the scan
// does not compare each file with each database (it took 18s so).
func TestSBOMManyEntriesStayLinear(t *testing.T) {
	var es []entry
	for i := 0; i < 15000; i++ {
		es = append(es, entry{name: fmt.Sprintf("var/lib/dpkg/status.d/p%d", i), data: []byte("x")})
	}
	lower := layerOf(t, es...)
	es = es[:0]
	for i := 0; i < 100000; i++ {
		es = append(es, entry{name: fmt.Sprintf("usr/share/doc/f%d", i)})
	}
	img := imageOf(t, lower, layerOf(t, es...))
	start := time.Now()
	if _, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("15000 databases, then 100000 files: %v", d)
	}
}

// TestSBOMAncestorReplaced: an opaque whiteout or a file at an ancestor directory of the
// databases (var/lib, lib) hides them all, however deep.
func TestSBOMAncestorReplaced(t *testing.T) {
	stanza := []byte("Package: gone\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n")
	lower := layerOf(t, entry{name: "var/lib/dpkg/status", data: stanza}, entry{name: "var/lib/dpkg/status.d/gone2", data: stanza},
		entry{name: "lib/apk/db/installed", data: []byte("P:gone3\nV:1\n\n")}, entry{name: "etc/os-release", data: []byte("ID=debian\n")})
	upper := layerOf(t, entry{name: "var/lib/.wh..wh..opq"}, entry{name: "lib", data: []byte("a file where lib was")})
	st, err := SBOM(context.Background(), nil, imageOf(t, lower, upper), SBOMOptions{Created: sbomTime, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st.Predicate, []byte(`"gone`)) || !bytes.Contains(st.Predicate, []byte(`"debian"`)) {
		t.Errorf("packages under a replaced ancestor are reported, or the untouched os-release lost: %s", st.Predicate)
	}
}
