package attest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type entry struct {
	name string
	mode int64
	data []byte
	dir  bool
}

func layerOf(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var sbomTime = time.Unix(1700000000, 0)

// sbomDoc makes the SBOM statement of img and returns its SPDX document, decoded, after
// checking the shape syft and trivy need.
func sbomDoc(t *testing.T, img v1.Image) map[string]any {
	t.Helper()
	d, _ := img.Digest()
	subj, err := Subjects([]string{"example.com/app:1"}, "linux/amd64", d)
	if err != nil {
		t.Fatal(err)
	}
	st, err := SBOM(context.Background(), subj, img, SBOMOptions{Created: sbomTime, Creator: "strata-test", TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, st)
	if m["predicateType"] != PredicateSPDX || get(t, m, "subject", 0, "digest", "sha256") != d.Hex {
		t.Fatalf("statement header: %v %v", m["predicateType"], m["subject"])
	}
	doc := get(t, m, "predicate").(map[string]any)
	checkSPDX(t, doc)
	return doc
}

var spdxID = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)

// checkSPDX validates what SPDX 2.3 requires and what syft's and trivy's readers use.
func checkSPDX(t *testing.T, doc map[string]any) {
	t.Helper()
	for k, want := range map[string]string{"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT"} {
		if doc[k] != want {
			t.Errorf("%s = %v, want %s", k, doc[k], want)
		}
	}
	if s, _ := doc["name"].(string); s == "" {
		t.Error("no document name")
	}
	if s, _ := doc["documentNamespace"].(string); !strings.HasPrefix(s, "https://") {
		t.Errorf("documentNamespace = %v", doc["documentNamespace"])
	}
	if c := get(t, doc, "creationInfo", "created"); c != "2023-11-14T22:13:20Z" {
		t.Errorf("created = %v", c)
	}
	if cr, _ := get(t, doc, "creationInfo", "creators").([]any); len(cr) == 0 {
		t.Error("no creators")
	}
	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	pkgs, _ := doc["packages"].([]any)
	files, _ := doc["files"].([]any)
	for _, list := range [][]any{pkgs, files} {
		for _, x := range list {
			id, _ := get(t, x, "SPDXID").(string)
			if !spdxID.MatchString(id) || ids[id] {
				t.Errorf("bad or repeated SPDXID %q", id)
			}
			ids[id] = true
		}
	}
	for _, p := range pkgs {
		for _, k := range []string{"name", "downloadLocation", "licenseConcluded", "licenseDeclared", "copyrightText"} {
			if s, _ := get(t, p, k).(string); s == "" {
				t.Errorf("package %v lacks %s", get(t, p, "SPDXID"), k)
			}
		}
		refs, _ := get(t, p, "externalRefs").([]any)
		for _, r := range refs {
			if get(t, r, "referenceCategory") != "PACKAGE-MANAGER" || get(t, r, "referenceType") != "purl" || !strings.HasPrefix(get(t, r, "referenceLocator").(string), "pkg:") {
				t.Errorf("external ref %v", r)
			}
		}
	}
	for _, f := range files {
		if s, _ := get(t, f, "fileName").(string); !strings.HasPrefix(s, "/") {
			t.Errorf("file name %v", get(t, f, "fileName"))
		}
		if get(t, f, "checksums", 0, "algorithm") != "SHA1" {
			t.Errorf("file %v: SPDX 2.3 wants a SHA1 checksum", get(t, f, "fileName"))
		}
	}
	rels, _ := doc["relationships"].([]any)
	describes := false
	for _, r := range rels {
		a, b := get(t, r, "spdxElementId").(string), get(t, r, "relatedSpdxElement").(string)
		if !ids[a] || !ids[b] {
			t.Errorf("relationship %v names an unknown element", r)
		}
		if a == "SPDXRef-DOCUMENT" && get(t, r, "relationshipType") == "DESCRIBES" {
			describes = true
		}
	}
	if !describes {
		t.Error("the document DESCRIBES nothing")
	}
}

type found struct{ version, purl, file string }

// packagesOf indexes the document's packages by name (the last one of a name wins).
func packagesOf(t *testing.T, doc map[string]any) map[string]found {
	t.Helper()
	out := map[string]found{}
	pkgs, _ := doc["packages"].([]any)
	for _, p := range pkgs {
		f := found{version: get(t, p, "versionInfo").(string)}
		if refs, _ := get(t, p, "externalRefs").([]any); len(refs) > 0 {
			f.purl = get(t, refs[0], "referenceLocator").(string)
		}
		f.file, _ = get(t, p, "sourceInfo").(string)
		out[get(t, p, "name").(string)] = f
	}
	return out
}

func hostFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("%s: %v (this test reads the host's Debian package database)", p, err)
	}
	return b
}

// TestSBOMDpkg: the host's real dpkg database, in an image, lists what dpkg-query says.
func TestSBOMDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("dpkg-query not found: not a Debian host")
	}
	status := hostFile(t, "/var/lib/dpkg/status")
	osrel := hostFile(t, "/usr/lib/os-release")
	img := imageOf(t, layerOf(t, entry{name: "var/lib/dpkg/status", data: status}, entry{name: "usr/lib/os-release", data: osrel}))
	doc := sbomDoc(t, img)
	pk := packagesOf(t, doc)
	var id, ver string
	for _, line := range strings.Split(string(osrel), "\n") {
		if v, ok := strings.CutPrefix(line, "ID="); ok {
			id = strings.Trim(v, `"`)
		}
		if v, ok := strings.CutPrefix(line, "VERSION_ID="); ok {
			ver = strings.Trim(v, `"`)
		}
	}
	for _, name := range []string{"dpkg", "bash", "libc6"} {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Version} ${Architecture}", name).Output()
		if err != nil {
			t.Fatalf("dpkg-query %s: %v", name, err)
		}
		want := strings.Fields(string(out))
		got, ok := pk[name]
		if !ok {
			t.Errorf("%s not in the SBOM", name)
			continue
		}
		if got.version != want[0] {
			t.Errorf("%s version %q, dpkg-query says %q", name, got.version, want[0])
		}
		wantPrefix := "pkg:deb/" + id + "/" + name + "@" + pctEncode(want[0]) + "?arch=" + want[1]
		if !strings.HasPrefix(got.purl, wantPrefix) || (ver != "" && !strings.Contains(got.purl, "distro="+id+"-"+ver)) {
			t.Errorf("%s purl %q, want %s...distro=%s-%s", name, got.purl, wantPrefix, id, ver)
		}
		if !strings.Contains(got.file, "/var/lib/dpkg/status") {
			t.Errorf("%s found in %q", name, got.file)
		}
	}
	if got := pk[id]; got.version != ver {
		t.Errorf("operating system package %s = %+v, want version %s", id, got, ver)
	}
	// Every package dpkg-query lists as installed is there, none more.
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status} ${Package}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "installed ") {
			n++
		}
	}
	debs := 0
	for _, f := range pk {
		if strings.HasPrefix(f.purl, "pkg:deb/") {
			debs++
		}
	}
	// Names can repeat across architectures (multiarch); the map keeps one per name.
	if debs == 0 || debs > n {
		t.Errorf("%d deb packages in the SBOM, dpkg-query lists %d installed", debs, n)
	}
}

// TestSBOMAlpine: Alpine's minirootfs as the image's layer.
func TestSBOMAlpine(t *testing.T) {
	const fixture = "/work/shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz"
	if _, err := os.Stat(fixture); err != nil {
		t.Skipf("%s absent: the Alpine case needs it", fixture)
	}
	l := mustLayerFromFile(t, fixture)
	// The expected versions come from the fixture itself, read by tar.
	db, err := exec.Command("tar", "-xOzf", fixture, "./lib/apk/db/installed").Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	want := map[string]string{}
	var cur string
	for _, line := range strings.Split(string(db), "\n") {
		if v, ok := strings.CutPrefix(line, "P:"); ok {
			cur = v
		}
		if v, ok := strings.CutPrefix(line, "V:"); ok {
			want[cur] = v
		}
	}
	doc := sbomDoc(t, imageOf(t, l))
	pk := packagesOf(t, doc)
	for _, name := range []string{"apk-tools", "musl", "busybox"} {
		got := pk[name]
		if want[name] == "" || got.version != want[name] {
			t.Errorf("%s: SBOM says %q, the fixture's DB %q", name, got.version, want[name])
		}
		if !strings.HasPrefix(got.purl, "pkg:apk/alpine/"+name+"@"+want[name]+"?arch=x86_64&distro=alpine-3.20.3") {
			t.Errorf("%s purl %q", name, got.purl)
		}
	}
	if pk["alpine"].version != "3.20.3" {
		t.Errorf("operating system package = %+v", pk["alpine"])
	}
	apks := 0
	for _, f := range pk {
		if strings.HasPrefix(f.purl, "pkg:apk/") {
			apks++
		}
	}
	if apks != len(want) {
		t.Errorf("%d apk packages in the SBOM, the DB has %d", apks, len(want))
	}
}

// goBinary builds a small static Go program that uses a module of this repository's
// module cache, and returns its bytes.
func goBinary(t *testing.T) []byte {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	sum, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, l := range strings.Split(string(sum), "\n") {
		if strings.HasPrefix(l, "github.com/docker/go-units v0.5.0") {
			sums = append(sums, l)
		}
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n\nrequire github.com/docker/go-units v0.5.0\n",
		"go.sum":  strings.Join(sums, "\n") + "\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/docker/go-units\"\n)\n\nfunc main() { fmt.Println(units.HumanSize(1e6)) }\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSBOMGoBinary(t *testing.T) {
	bin := goBinary(t)
	img := imageOf(t, layerOf(t,
		entry{name: "usr/local/bin/hello", mode: 0o755, data: bin},
		entry{name: "usr/local/bin/script", mode: 0o755, data: []byte("#!/bin/sh\necho not a go program, long enough to be looked at .........................\n")},
	))
	pk := packagesOf(t, sbomDoc(t, img))
	if got := pk["github.com/docker/go-units"]; got.version != "v0.5.0" || got.purl != "pkg:golang/github.com/docker/go-units@v0.5.0" ||
		!strings.Contains(got.file, "/usr/local/bin/hello") {
		t.Errorf("dependency: %+v", got)
	}
	if got := pk["example.com/hello"]; got.version != "(devel)" || !strings.HasPrefix(got.purl, "pkg:golang/example.com/hello@") {
		t.Errorf("main module: %+v", got)
	}
	out, _ := exec.Command("go", "env", "GOVERSION").Output()
	gov := strings.TrimPrefix(strings.TrimSpace(string(out)), "go")
	if got := pk["stdlib"]; got.version != gov || got.purl != "pkg:golang/stdlib@"+gov {
		t.Errorf("stdlib: %+v, want version %s", got, gov)
	}
}

// TestSBOMWhiteouts: a package database or program a later layer deletes, by whiteout or
// opaque directory, is not reported; what the deleting layer itself adds is.
func TestSBOMWhiteouts(t *testing.T) {
	bin := goBinary(t)
	status := []byte("Package: gone\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\nPackage: configonly\nStatus: deinstall ok config-files\nVersion: 2.0\nArchitecture: amd64\n")
	apk := []byte("P:kept\nV:3.0-r0\nA:x86_64\n\n")
	lower := layerOf(t,
		entry{name: "var/lib/dpkg/status", data: status},
		entry{name: "lib/apk/db/installed", data: apk},
		entry{name: "opt/bin/old", mode: 0o755, data: bin},
	)
	if pk := packagesOf(t, sbomDoc(t, imageOf(t, lower))); pk["gone"].version != "1.0" || pk["kept"].version != "3.0-r0" || pk["github.com/docker/go-units"].version == "" {
		t.Fatalf("the lower layer alone: %v", pk)
	} else if _, ok := pk["configonly"]; ok {
		t.Error("a package whose configuration alone remains was reported as installed")
	}
	upper := layerOf(t,
		entry{name: "var/lib/dpkg/.wh.status"},
		entry{name: "opt/bin/new", mode: 0o755, data: bin}, // before the opaque marker: still this layer's
		entry{name: "opt/bin/.wh..wh..opq"},
	)
	pk := packagesOf(t, sbomDoc(t, imageOf(t, lower, upper)))
	if _, ok := pk["gone"]; ok {
		t.Error("a dpkg database deleted by a whiteout was reported")
	}
	if pk["kept"].version != "3.0-r0" {
		t.Error("the apk database nobody deleted went missing")
	}
	got := pk["github.com/docker/go-units"]
	if !strings.Contains(got.file, "/opt/bin/new") {
		t.Errorf("Go dependency found in %q, want /opt/bin/new (old is under an opaque directory)", got.file)
	}
	n := 0
	for _, p := range get(t, sbomDoc(t, imageOf(t, lower, upper)), "packages").([]any) {
		if get(t, p, "name") == "github.com/docker/go-units" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("go-units reported %d times, want once (from /opt/bin/new)", n)
	}

	// A regular file over the database replaces it.
	over := layerOf(t, entry{name: "lib/apk/db/installed", data: []byte("P:newer\nV:4.0-r0\nA:x86_64\n")})
	pk = packagesOf(t, sbomDoc(t, imageOf(t, lower, over)))
	if _, ok := pk["kept"]; ok || pk["newer"].version != "4.0-r0" {
		t.Errorf("overwritten apk DB: %v", pk)
	}
}

// TestSBOMStable: two scans give the same bytes, and the document says when from the input.
func TestSBOMStable(t *testing.T) {
	status := hostFile(t, "/var/lib/dpkg/status")
	img := imageOf(t, layerOf(t, entry{name: "var/lib/dpkg/status", data: status}, entry{name: "lib/apk/db/installed", data: []byte("P:a\nV:1\n\nP:b\nV:2\n")}))
	var prev []byte
	for i := 0; i < 2; i++ {
		st, err := SBOM(context.Background(), nil, img, SBOMOptions{Created: sbomTime.In(time.FixedZone("Z", 3600*i))})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(st)
		if prev != nil && !bytes.Equal(prev, b) {
			t.Fatal("two SBOMs of one image differ")
		}
		prev = b
	}
	if _, err := SBOM(context.Background(), nil, img, SBOMOptions{}); err == nil {
		t.Error("an SBOM without a creation time was made")
	}
}

// TestSBOMDistroless: distroless images keep one dpkg stanza per file in
// var/lib/dpkg/status.d/, next to md5sums files that are no database.
func TestSBOMDistroless(t *testing.T) {
	status := hostFile(t, "/var/lib/dpkg/status")
	stanzas := map[string][]byte{}
	for _, para := range bytes.Split(status, []byte("\n\n")) {
		for _, n := range []string{"libc6", "base-files"} {
			if bytes.HasPrefix(para, []byte("Package: "+n+"\n")) {
				stanzas[n] = append(para, '\n')
			}
		}
	}
	if len(stanzas) != 2 {
		t.Skip("the host has no libc6 or base-files stanza to make a distroless image of")
	}
	img := imageOf(t, layerOf(t,
		entry{name: "var/lib/dpkg/status.d/", dir: true},
		entry{name: "var/lib/dpkg/status.d/libc6", data: stanzas["libc6"]},
		entry{name: "var/lib/dpkg/status.d/libc6.md5sums", data: []byte("0123 lib/x86_64-linux-gnu/libc.so.6\n")},
		entry{name: "var/lib/dpkg/status.d/base-files", data: stanzas["base-files"]},
	))
	pk := packagesOf(t, sbomDoc(t, img))
	for _, n := range []string{"libc6", "base-files"} {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", n).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := pk[n]; got.version != string(out) || !strings.HasSuffix(got.file, "/var/lib/dpkg/status.d/"+n) {
			t.Errorf("%s: %+v, dpkg-query says %s", n, got, out)
		}
	}
	if len(pk) != 3 { // the image, libc6, base-files
		t.Errorf("packages: %v", pk)
	}
}

func mustLayerFromFile(t *testing.T, p string) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
