package attest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type debugModule = debug.Module

// pkgInfo is one package found in the image.
type pkgInfo struct {
	kind       string // "deb", "apk", "go"
	name       string
	version    string
	purl       string
	supplier   string
	homepage   string
	sourceInfo string
	file       string // the evidence file's path, without leading slash
}

// osRelease is the distribution, from etc/os-release or usr/lib/os-release.
type osRelease struct{ id, versionID, name, prettyName string }

func (fs scanned) osRelease() osRelease {
	e := fs["etc/os-release"]
	if e == nil {
		e = fs["usr/lib/os-release"]
	}
	var r osRelease
	if e == nil {
		return r
	}
	sc := bufio.NewScanner(bytes.NewReader(e.data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			r.id = v
		case "VERSION_ID":
			r.versionID = v
		case "NAME":
			r.name = v
		case "PRETTY_NAME":
			r.prettyName = v
		}
	}
	return r
}

func (r osRelease) distro() string {
	if r.id == "" {
		return ""
	}
	if r.versionID == "" {
		return r.id
	}
	return r.id + "-" + r.versionID
}

// paragraphs splits an RFC 822-style database (dpkg status, apk installed) into its
// stanzas, calling fn with each one's first value of every field, until fn returns false.
func paragraphs(data []byte, sep string, fn func(map[string]string) bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxDBSize)
	cur := map[string]string{}
	more := true
	flush := func() {
		if len(cur) > 0 {
			more = fn(cur)
		}
		cur = map[string]string{}
	}
	for more && sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line: descriptions, conffiles
		}
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		if _, seen := cur[k]; !seen {
			cur[k] = strings.TrimSpace(v)
		}
	}
	if more {
		flush()
	}
}

// dpkgPackages, apkPackages and goPackages list at most limit packages and one more,
// so a caller sees a database holding too many without keeping them all.
func dpkgPackages(e *evidence, rel osRelease, limit int) []pkgInfo {
	ns := rel.id
	if ns == "" {
		ns = "debian"
	}
	var out []pkgInfo
	paragraphs(e.data, ":", func(f map[string]string) bool {
		name, version := f["Package"], f["Version"]
		if name == "" || version == "" {
			return true
		}
		// dpkg keeps removed packages' configuration ("deinstall ok config-files"): not installed.
		if st := strings.Fields(f["Status"]); len(st) == 3 && st[2] != "installed" {
			return true
		}
		q := map[string]string{"arch": f["Architecture"], "distro": rel.distro()}
		if src := f["Source"]; src != "" {
			srcName, srcVersion, _ := strings.Cut(src, " ")
			srcVersion = strings.Trim(srcVersion, "()")
			if srcVersion != "" && srcVersion != version {
				q["upstream"] = srcName + "@" + srcVersion
			} else if srcName != name {
				q["upstream"] = srcName
			}
		}
		out = append(out, pkgInfo{
			kind: "deb", name: name, version: version,
			purl:       purl("deb", ns, name, version, q),
			supplier:   person(f["Maintainer"]),
			homepage:   f["Homepage"],
			sourceInfo: "acquired package info from DPKG DB: /" + e.path,
			file:       e.path,
		})
		return len(out) <= limit
	})
	return out
}

func apkPackages(e *evidence, rel osRelease, limit int) []pkgInfo {
	ns := rel.id
	if ns == "" {
		ns = "alpine"
	}
	var out []pkgInfo
	paragraphs(e.data, ":", func(f map[string]string) bool {
		name, version := f["P"], f["V"]
		if name == "" || version == "" {
			return true
		}
		q := map[string]string{"arch": f["A"], "distro": rel.distro()}
		if o := f["o"]; o != "" && o != name {
			q["upstream"] = o
		}
		out = append(out, pkgInfo{
			kind: "apk", name: name, version: version,
			purl:       purl("apk", ns, name, version, q),
			supplier:   person(f["m"]),
			homepage:   f["U"],
			sourceInfo: "acquired package info from APK DB: /" + e.path,
			file:       e.path,
		})
		return len(out) <= limit
	})
	return out
}

func goPackages(e *evidence, limit int) []pkgInfo {
	bi := e.goInfo
	var out []pkgInfo
	add := func(p, v string) {
		if p == "" || v == "" {
			return
		}
		ns, nm := "", p
		if i := strings.LastIndex(p, "/"); i >= 0 {
			ns, nm = p[:i], p[i+1:]
		}
		out = append(out, pkgInfo{
			kind: "go", name: p, version: v,
			purl:       purl("golang", ns, nm, v, nil),
			sourceInfo: "acquired package info from go module information: /" + e.path,
			file:       e.path,
		})
	}
	mod := func(m *debugModule) {
		for m.Replace != nil {
			m = m.Replace
		}
		add(m.Path, m.Version)
	}
	if bi.Main.Path != "" {
		mod(&bi.Main)
	}
	for _, d := range bi.Deps {
		if len(out) > limit {
			break
		}
		mod(d)
	}
	if v, ok := strings.CutPrefix(bi.GoVersion, "go"); ok {
		// syft reports the standard library the binary was built with as a module too.
		add("stdlib", strings.Fields(v)[0])
	}
	return out
}

func person(maintainer string) string {
	if maintainer == "" {
		return "NOASSERTION"
	}
	return "Person: " + maintainer
}

// SPDX 2.3 JSON, the fields syft writes and trivy reads.
type spdxDoc struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      spdxCreation   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Files             []spdxFile     `json:"files,omitempty"`
	Relationships     []spdxRelation `json:"relationships"`
}

type spdxCreation struct {
	Creators []string `json:"creators"`
	Created  string   `json:"created"`
}

type spdxPackage struct {
	Name                  string       `json:"name"`
	SPDXID                string       `json:"SPDXID"`
	VersionInfo           string       `json:"versionInfo,omitempty"`
	Supplier              string       `json:"supplier,omitempty"`
	DownloadLocation      string       `json:"downloadLocation"`
	FilesAnalyzed         bool         `json:"filesAnalyzed"`
	SourceInfo            string       `json:"sourceInfo,omitempty"`
	LicenseConcluded      string       `json:"licenseConcluded"`
	LicenseDeclared       string       `json:"licenseDeclared"`
	CopyrightText         string       `json:"copyrightText"`
	ExternalRefs          []spdxExtRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose string       `json:"primaryPackagePurpose,omitempty"`
}

type spdxExtRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxFile struct {
	FileName         string         `json:"fileName"`
	SPDXID           string         `json:"SPDXID"`
	Checksums        []spdxChecksum `json:"checksums"`
	LicenseConcluded string         `json:"licenseConcluded"`
	CopyrightText    string         `json:"copyrightText"`
	FileComment      string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelation struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
	RelationshipType   string `json:"relationshipType"`
	Comment            string `json:"comment,omitempty"`
}

// packages lists what the evidence says, sorted by purl then file, each once (a
// database may repeat a stanza: SPDX ids must be unique); more than maxPackages is an
// error.
func (fs scanned) packages() ([]pkgInfo, error) {
	rel := fs.osRelease()
	var out []pkgInfo
	for p, e := range fs {
		room := maxPackages - len(out)
		switch {
		case e.goInfo != nil:
			out = append(out, goPackages(e, room)...)
		case p == "var/lib/dpkg/status" || strings.HasPrefix(p, "var/lib/dpkg/status.d/"):
			out = append(out, dpkgPackages(e, rel, room)...)
		case p == "lib/apk/db/installed":
			out = append(out, apkPackages(e, rel, room)...)
		}
		if len(out) > maxPackages {
			return nil, fmt.Errorf("sbom: more than %d packages, the last ones in /%s: a broken or hostile package database", maxPackages, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].purl != out[j].purl {
			return out[i].purl < out[j].purl
		}
		return out[i].file < out[j].file
	})
	return slices.CompactFunc(out, func(a, b pkgInfo) bool { return a.purl == b.purl && a.file == b.file }), nil
}

func spdxDocument(fs scanned, pkgs []pkgInfo, subjects []Subject, manifest v1.Hash, opts SBOMOptions) spdxDoc {
	name := manifest.String()
	if len(subjects) > 0 {
		name = subjects[0].Name
	}
	creators := []string{"Organization: Strata"}
	if opts.Creator != "" {
		creators = append(creators, "Tool: "+opts.Creator)
	} else {
		creators = append(creators, "Tool: strata")
	}
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        name,
		// Unique per image: the manifest digest names the content, the names its subjects.
		DocumentNamespace: "https://github.com/strata-build/strata/spdx/" + manifest.Algorithm + "-" + manifest.Hex + "-" + idHash(subjectNames(subjects)...),
		CreationInfo:      spdxCreation{Creators: creators, Created: opts.Created.UTC().Format("2006-01-02T15:04:05Z")},
		Packages:          []spdxPackage{},
	}
	rootID := "SPDXRef-DocumentRoot-Image-" + spdxIDPart(path.Base(strings.SplitN(strings.TrimPrefix(name, "pkg:docker/"), "@", 2)[0])) + "-" + idHash(manifest.String())
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: name, SPDXID: rootID, VersionInfo: manifest.String(),
		Supplier: "NOASSERTION", DownloadLocation: "NOASSERTION",
		LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
		PrimaryPackagePurpose: "CONTAINER",
	})
	doc.Relationships = append(doc.Relationships, spdxRelation{SPDXElementID: "SPDXRef-DOCUMENT", RelatedSPDXElement: rootID, RelationshipType: "DESCRIBES"})

	if rel := fs.osRelease(); rel.id != "" {
		// trivy learns the distribution (and so which advisories apply) from this package.
		osID := "SPDXRef-OperatingSystem-" + idHash(rel.id, rel.versionID)
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: rel.id, SPDXID: osID, VersionInfo: rel.versionID,
			Supplier: "NOASSERTION", DownloadLocation: "NOASSERTION",
			LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: "OPERATING-SYSTEM",
		})
		doc.Relationships = append(doc.Relationships, spdxRelation{SPDXElementID: rootID, RelatedSPDXElement: osID, RelationshipType: "CONTAINS"})
	}

	fileIDs := map[string]string{}
	for _, p := range pkgs {
		id := "SPDXRef-Package-" + p.kind + "-" + spdxIDPart(p.name) + "-" + idHash(p.purl, p.file)
		dl := "NOASSERTION"
		if strings.HasPrefix(p.homepage, "http://") || strings.HasPrefix(p.homepage, "https://") {
			dl = p.homepage
		}
		sup := p.supplier
		if sup == "" {
			sup = "NOASSERTION"
		}
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: p.name, SPDXID: id, VersionInfo: p.version,
			Supplier: sup, DownloadLocation: dl, SourceInfo: p.sourceInfo,
			LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
			ExternalRefs: []spdxExtRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: p.purl}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelation{SPDXElementID: rootID, RelatedSPDXElement: id, RelationshipType: "CONTAINS"})
		fid, ok := fileIDs[p.file]
		if !ok {
			e := fs[p.file]
			fid = "SPDXRef-File-" + spdxIDPart(path.Base(p.file)) + "-" + idHash(p.file)
			fileIDs[p.file] = fid
			doc.Files = append(doc.Files, spdxFile{
				FileName: "/" + p.file, SPDXID: fid,
				Checksums:        []spdxChecksum{{"SHA1", e.sha1}, {"SHA256", e.sha256}},
				LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
				// BuildKit's supplementSBOM notes the layer a file came from so.
				FileComment: "layerID: " + e.layer.String(),
			})
		}
		doc.Relationships = append(doc.Relationships, spdxRelation{
			SPDXElementID: id, RelatedSPDXElement: fid, RelationshipType: "OTHER",
			Comment: "evident-by: indicates the package's existence is evident by the given file",
		})
	}
	sort.Slice(doc.Files, func(i, j int) bool { return doc.Files[i].FileName < doc.Files[j].FileName })
	return doc
}

func subjectNames(s []Subject) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].Name
	}
	return out
}

// idHash is a short content-derived identifier: SPDX ids must be unique in the document
// and, for stable bytes, the same on every run.
func idHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// spdxIDPart keeps what SPDX allows in an id: letters, digits, '.' and '-'.
func spdxIDPart(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}
