package attest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// StatementType is the in-toto statement type BuildKit v0.34 writes (in-toto-golang's
// StatementInTotoV1): ITE-6 v1. Readers accept it and the older v0.1 alike.
const StatementType = "https://in-toto.io/Statement/v1"

// Predicate types, the key on which every consumer selects a statement.
const (
	PredicateSLSAProvenanceV1  = "https://slsa.dev/provenance/v1"
	PredicateSLSAProvenanceV02 = "https://slsa.dev/provenance/v0.2"
	PredicateSPDX              = "https://spdx.dev/Document"
)

// Statement is an in-toto statement: what a predicate says about its subjects. Its JSON
// (json.Marshal) is one layer of an attestation manifest.
type Statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject names an artifact a statement is about, by digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Subjects names an image manifest as BuildKit names its attestations' subjects: one
// subject per image name (the -t tags), each the package URL
// pkg:docker/<familiar name>@<tag>?platform=<os/arch[/variant]> with the manifest's
// digest. An image without a name gets no subject, as with BuildKit (its statements say
// "subject": []); the index descriptor of the attestation manifest still names the image
// manifest (vnd.docker.reference.digest). platform is "linux/amd64" and the like.
func Subjects(names []string, platform string, manifest v1.Hash) ([]Subject, error) {
	if manifest.Algorithm == "" || manifest.Hex == "" {
		return nil, fmt.Errorf("attestation subject: empty manifest digest")
	}
	out := []Subject{}
	for _, n := range names {
		if n == "" {
			continue
		}
		p, err := ImagePURL(n, platform)
		if err != nil {
			return nil, err
		}
		out = append(out, Subject{Name: p, Digest: map[string]string{manifest.Algorithm: manifest.Hex}})
	}
	return out, nil
}

// ImagePURL is BuildKit's package URL of an image reference (util/purl.RefToPURL with the
// docker type): docker.io/library/alpine:3.20 is pkg:docker/alpine@3.20, a reference
// without tag or digest gets the tag latest, a digest becomes the digest qualifier, and a
// non-empty platform the platform qualifier, normalized (linux/arm64/v8 is linux/arm64).
func ImagePURL(ref, platform string) (string, error) {
	base, dgst, hasDigest := strings.Cut(ref, "@")
	if hasDigest {
		if _, err := v1.NewHash(dgst); err != nil {
			return "", fmt.Errorf("image reference %q: bad digest: %w", ref, err)
		}
	}
	tag, err := name.NewTag(base)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	version := tag.TagStr()
	lastSlash := strings.LastIndex(base, "/")
	if hasDigest && !strings.Contains(base[lastSlash+1:], ":") {
		version = "" // a digest alone: BuildKit does not default the tag
	}
	familiar := tag.RepositoryStr()
	if reg := tag.RegistryStr(); reg != name.DefaultRegistry && reg != "docker.io" {
		familiar = reg + "/" + familiar
	} else if rest, ok := strings.CutPrefix(familiar, "library/"); ok && !strings.Contains(rest, "/") {
		familiar = rest
	}
	ns, nm := "", familiar
	if i := strings.LastIndex(familiar, "/"); i >= 0 {
		ns, nm = familiar[:i], familiar[i+1:]
	}
	q := map[string]string{}
	if hasDigest {
		q["digest"] = dgst
	}
	if platform != "" {
		p, err := NormalizePlatform(platform)
		if err != nil {
			return "", err
		}
		q["platform"] = p
	}
	return purl("docker", ns, nm, version, q), nil
}

// NormalizePlatform formats os/arch[/variant] as containerd's platforms.Normalize and
// Format do for the common cases BuildKit names subjects with.
func NormalizePlatform(s string) (string, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return "", fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	os, arch, variant := parts[0], parts[1], ""
	if len(parts) == 3 {
		variant = parts[2]
	}
	switch arch {
	case "x86_64", "x86-64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	case "i386", "i486", "i586", "i686":
		arch = "386"
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	}
	switch {
	case arch == "arm64" && (variant == "v8" || variant == "8"):
		variant = ""
	case arch == "arm" && variant == "":
		variant = "v7"
	case arch == "arm" && len(variant) == 1:
		variant = "v" + variant
	}
	if variant == "" {
		return os + "/" + arch, nil
	}
	return os + "/" + arch + "/" + variant, nil
}

// purl formats a package URL as packageurl-go's ToString does (BuildKit's and syft's):
// percent-encoded components, qualifiers sorted by key.
func purl(typ, namespace, name, version string, qualifiers map[string]string) string {
	var b strings.Builder
	b.WriteString("pkg:")
	b.WriteString(typ)
	for _, seg := range strings.Split(namespace, "/") {
		if seg != "" {
			b.WriteByte('/')
			b.WriteString(pctEncode(seg))
		}
	}
	b.WriteByte('/')
	b.WriteString(pctEncode(name))
	if version != "" {
		b.WriteByte('@')
		b.WriteString(pctEncode(version))
	}
	keys := make([]string, 0, len(qualifiers))
	for k, v := range qualifiers {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(pctEncode(k))
		b.WriteByte('=')
		b.WriteString(pctEncode(qualifiers[k]))
	}
	return b.String()
}

func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// newStatement wraps a predicate; the subjects are copied so that one slice can serve
// several statements.
func newStatement(predicateType string, subjects []Subject, predicate any) (Statement, error) {
	raw, err := json.Marshal(predicate)
	if err != nil {
		return Statement{}, fmt.Errorf("attestation %s: %w", predicateType, err)
	}
	subj := make([]Subject, len(subjects))
	copy(subj, subjects)
	return Statement{Type: StatementType, PredicateType: predicateType, Subject: subj, Predicate: raw}, nil
}
