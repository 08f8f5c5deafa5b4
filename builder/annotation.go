package builder

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The annotation types of buildx's --annotation TYPE[PLATFORM]:KEY=VALUE.
const (
	AnnotationManifest           = "manifest"
	AnnotationIndex              = "index"
	AnnotationManifestDescriptor = "manifest-descriptor"
	AnnotationIndexDescriptor    = "index-descriptor"
)

// Annotation is one --annotation: where it goes (Type), the platform whose
// image it is for (nil: any) and the key and value.
type Annotation struct {
	Type     string
	Platform *specs.Platform
	Key      string
	Value    string
}

var annotationType = regexp.MustCompile(`^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$`)

// ParseAnnotation reads an --annotation as buildx does: KEY=VALUE (the
// manifest's), or TYPES:KEY=VALUE with TYPES a comma list of manifest,
// index, manifest-descriptor or index-descriptor, each optionally followed
// by a [platform].
func ParseAnnotation(s string) ([]Annotation, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("--annotation %q: want [TYPE:]KEY=VALUE", s)
	}
	typesList, key, typed := strings.Cut(k, ":")
	if !typed {
		typesList, key = AnnotationManifest, k
	}
	if key == "" || strings.ContainsAny(key, " \t\n") {
		return nil, fmt.Errorf("--annotation %q: the key must be a non-empty word", s)
	}
	var out []Annotation
	for _, tp := range strings.Split(typesList, ",") {
		g := annotationType.FindStringSubmatch(tp)
		if g == nil {
			return nil, fmt.Errorf("--annotation %q: invalid type %q: want a type and optionally a platform in square brackets", s, tp)
		}
		switch g[1] {
		case AnnotationManifest, AnnotationIndex, AnnotationManifestDescriptor, AnnotationIndexDescriptor:
		default:
			return nil, fmt.Errorf("--annotation %q: unknown type %q: want manifest, index, manifest-descriptor or index-descriptor", s, g[1])
		}
		a := Annotation{Type: g[1], Key: key, Value: v}
		if g[2] != "" {
			p, err := platforms.Parse(g[2])
			if err != nil {
				return nil, fmt.Errorf("--annotation %q: platform %q: %w", s, g[2], err)
			}
			p = platforms.Normalize(p)
			a.Platform = &p
		}
		out = append(out, a)
	}
	return out, nil
}

// checkAnnotations refuses an annotation for a platform this build does
// not make, as BuildKit does ("no platform found in source").
func checkAnnotations(as []Annotation, targets []specs.Platform) error {
	for _, a := range as {
		if a.Platform != nil && !slices.ContainsFunc(targets, func(t specs.Platform) bool { return platforms.Only(t).Match(*a.Platform) }) {
			var names []string
			for _, t := range targets {
				names = append(names, platforms.Format(t))
			}
			return fmt.Errorf("--annotation %s[%s]:%s: this build makes no image for %s (it builds %s)",
				a.Type, platforms.Format(*a.Platform), a.Key, platforms.Format(*a.Platform), strings.Join(names, ", "))
		}
	}
	return nil
}

// annotationsFor are the values of type tp that apply to the image for
// target: those without a platform and those naming target.
func annotationsFor(as []Annotation, tp string, target specs.Platform) map[string]string {
	var m map[string]string
	for _, a := range as {
		if a.Type != tp || a.Platform != nil && !platforms.Only(target).Match(*a.Platform) {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[a.Key] = a.Value
	}
	return m
}

// annotationsOf are the values of type tp, nil when there are none.
func annotationsOf(as []Annotation, tp string) map[string]string {
	var m map[string]string
	for _, a := range as {
		if a.Type != tp {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[a.Key] = a.Value
	}
	return m
}

// withIndex is img as an output writes it: img itself, or, when there are
// index or index-descriptor annotations, an OCI index holding it (the only
// place they can go, as buildx's single-platform image with its
// attestations is an index), its descriptor carrying img's platform and
// the manifest-descriptor annotations.
func withIndex(img v1.Image, as []Annotation) (v1.ImageIndex, error) {
	if annotationsOf(as, AnnotationIndex) == nil && annotationsOf(as, AnnotationIndexDescriptor) == nil {
		return nil, nil
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	desc := v1.Descriptor{
		Platform:    &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
		Annotations: annotationsOf(as, AnnotationManifestDescriptor),
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: desc}), types.OCIImageIndex)
	if a := annotationsOf(as, AnnotationIndex); a != nil {
		idx = mutate.Annotations(idx, a).(v1.ImageIndex)
	}
	return idx, nil
}

// merged is a with b's entries added (b wins), nil when both are empty.
func merged(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	m := maps.Clone(a)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, b)
	return m
}
