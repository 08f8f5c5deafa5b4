package cache

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// Spec is one --cache-from or --cache-to value, in buildx's syntax:
// comma-separated key=value pairs (CSV quoting allowed), or a bare
// reference for type=registry.
type Spec struct {
	// Type is registry, local or inline.
	Type string
	// Ref is the registry reference (type=registry).
	Ref string
	// Dir is the OCI layout directory (type=local: src= to import,
	// dest= to export).
	Dir string
	// Tag names the manifest in a local layout's index.json.
	Tag string
	// Mode is min (the final image's steps) or max (every step).
	Mode string
	// CacheMounts exports the RUN --mount=type=cache directories the build
	// used, and imports those a cache holds.
	CacheMounts bool
	// Compression, when given, must be the build's: an entry's key covers
	// its layer's compression, so a layer cannot be recompressed for the
	// cache.
	Compression string
	// IgnoreError is buildx's: true (the default here) makes a failed
	// export a warning; false fails the build.
	IgnoreError bool
	raw         string
}

func (s Spec) String() string { return s.raw }

// Name is what messages call the cache: its reference or directory.
func (s Spec) Name() string {
	switch s.Type {
	case "registry":
		return s.Ref
	case "local":
		return s.Dir
	}
	return s.Type
}

// ParseFrom parses a --cache-from value.
func ParseFrom(v string) (Spec, error) { return parse(v, false) }

// ParseTo parses a --cache-to value.
func ParseTo(v string) (Spec, error) { return parse(v, true) }

func parse(v string, to bool) (Spec, error) {
	flag := "--cache-from"
	if to {
		flag = "--cache-to"
	}
	s := Spec{Mode: "min", Tag: "latest", IgnoreError: true, raw: v}
	if strings.ContainsAny(v, "\r\n") {
		return s, fmt.Errorf("%s %q: one line, please", flag, v)
	}
	fields, err := csv.NewReader(strings.NewReader(v)).Read()
	if err != nil || len(fields) == 0 {
		return s, fmt.Errorf("%s %q: not a comma-separated list of key=value", flag, v)
	}
	if len(fields) == 1 && !strings.Contains(fields[0], "=") {
		// buildx: a bare value is a registry reference.
		s.Type, s.Ref = "registry", fields[0]
		return s, nil
	}
	// An unsupported type is named as such, whatever its keys.
	for _, f := range fields {
		if k, val, _ := strings.Cut(f, "="); strings.TrimSpace(strings.ToLower(k)) == "type" && (val == "gha" || val == "s3" || val == "azblob") {
			return s, fmt.Errorf("%s %q: type=%s is not supported: use type=registry, or type=local with the CI system's own cache", flag, v, val)
		}
	}
	for _, f := range fields {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return s, fmt.Errorf("%s %q: %q is not key=value", flag, v, f)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case k == "type":
			s.Type = val
		case k == "ref":
			s.Ref = val
		case k == "src" && !to, k == "dest" && to:
			s.Dir = val
		case k == "tag":
			s.Tag = val
		case k == "mode" && to:
			if val != "min" && val != "max" {
				return s, fmt.Errorf("%s %q: mode=%s: want min or max", flag, v, val)
			}
			s.Mode = val
		case k == "cache-mounts":
			if s.CacheMounts, err = strconv.ParseBool(val); err != nil {
				return s, fmt.Errorf("%s %q: cache-mounts=%s: want true or false", flag, v, val)
			}
		case k == "compression" && to:
			s.Compression = val
		case k == "ignore-error" && to:
			if s.IgnoreError, err = strconv.ParseBool(val); err != nil {
				return s, fmt.Errorf("%s %q: ignore-error=%s: want true or false", flag, v, val)
			}
		case k == "image-manifest" || k == "oci-mediatypes":
			// buildx's: strata always writes an OCI image manifest.
		case k == "compression-level" || k == "force-compression":
			return s, fmt.Errorf("%s %q: %s is not supported: cache layers are the build's own (set --compression)", flag, v, k)
		default:
			return s, fmt.Errorf("%s %q: unknown key %q", flag, v, k)
		}
	}
	switch s.Type {
	case "registry":
		if s.Ref == "" {
			return s, fmt.Errorf("%s %q: type=registry needs ref=", flag, v)
		}
	case "local":
		if s.Dir == "" {
			want := "src="
			if to {
				want = "dest="
			}
			return s, fmt.Errorf("%s %q: type=local needs %s", flag, v, want)
		}
	case "inline":
		if !to {
			return s, fmt.Errorf("%s %q: to import inline records, name the image: --cache-from type=registry,ref=IMAGE", flag, v)
		}
	case "":
		return s, fmt.Errorf("%s %q: needs type= (registry, local or inline)", flag, v)
	case "gha", "s3", "azblob":
		return s, fmt.Errorf("%s %q: type=%s is not supported: use type=registry, or type=local with the CI system's own cache", flag, v, s.Type)
	default:
		return s, fmt.Errorf("%s %q: unknown type %q: want registry, local or inline", flag, v, s.Type)
	}
	return s, nil
}
