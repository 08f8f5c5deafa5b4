package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
)

// state is a stage's image while it is being built: its layers (all in the
// store) and its config, with the cache key of the chain of steps so far.
type state struct {
	layers []*layer.Layer
	config ImageConfig
	// key is the cache key of the filesystem: the base and the steps that
	// may change files; prev is the key of the last step of any kind.
	key  string
	prev string
	// base names what the filesystem chain starts from, for explaining
	// misses; steps are the chain's steps, for the cache export.
	base  string
	steps []cache.Step
}

func (s *state) clone() *state {
	c := &state{layers: append([]*layer.Layer(nil), s.layers...), key: s.key, prev: s.prev, base: s.base, steps: slices.Clone(s.steps)}
	c.config = cloneConfig(s.config)
	return c
}

// ImageConfig is an image config as Strata reads and writes it:
// go-containerregistry's ConfigFile plus what that type has no field for,
// Healthcheck.StartInterval (HEALTHCHECK --start-interval, written as
// moby's container.HealthConfig and BuildKit write it). Its JSON methods
// are the one place the field is written and read, so a base image's
// start interval is inherited as the rest of its healthcheck is.
type ImageConfig struct {
	v1.ConfigFile
	// StartInterval belongs to Config.Healthcheck: it is written only with
	// one, and every HEALTHCHECK sets both.
	StartInterval time.Duration
}

// healthJSON is Config.Healthcheck with StartInterval, as Docker writes it.
type healthJSON struct {
	*v1.HealthConfig
	StartInterval time.Duration `json:",omitempty"`
}

// MarshalJSON writes c as go-containerregistry writes c.ConfigFile, byte
// for byte unless there is a start interval (so no digest changes for an
// image without one); then the healthcheck gains the field.
func (c ImageConfig) MarshalJSON() ([]byte, error) {
	if c.StartInterval == 0 || c.Config.Healthcheck == nil {
		return json.Marshal(c.ConfigFile)
	}
	// The shallower "config" field shadows the embedded one (encoding/json
	// writes it after the ConfigFile's fields, deterministically).
	type config struct {
		v1.Config
		Healthcheck healthJSON `json:"Healthcheck"`
	}
	return json.Marshal(struct {
		v1.ConfigFile
		Config config `json:"config"`
	}{c.ConfigFile, config{c.Config, healthJSON{c.Config.Healthcheck, c.StartInterval}}})
}

// UnmarshalJSON reads a config, its healthcheck's StartInterval included.
func (c *ImageConfig) UnmarshalJSON(b []byte) error {
	var extra struct {
		Config struct {
			Healthcheck *struct{ StartInterval time.Duration } `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &c.ConfigFile); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &extra); err != nil {
		return err
	}
	c.StartInterval = 0
	if h := extra.Config.Healthcheck; h != nil && c.Config.Healthcheck != nil {
		c.StartInterval = h.StartInterval
	}
	return nil
}

// cloneConfig deep-copies the parts of a config a step may change, so a
// stage never alters the config of the stage or image it was built from.
func cloneConfig(cfg ImageConfig) ImageConfig {
	cfg.History = slices.Clone(cfg.History)
	cfg.RootFS.DiffIDs = slices.Clone(cfg.RootFS.DiffIDs)
	c := &cfg.Config
	c.Env = slices.Clone(c.Env)
	c.Cmd = slices.Clone(c.Cmd)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.OnBuild = slices.Clone(c.OnBuild)
	c.Shell = slices.Clone(c.Shell)
	c.Labels = maps.Clone(c.Labels)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	c.Volumes = maps.Clone(c.Volumes)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return cfg
}

// ociLayerType maps Docker's layer media types onto their OCI equal.
var ociLayerType = registry.OCILayerType

// builtImage is an OCI image whose blobs are all in the store. It
// implements partial.CompressedImageCore; everything is computed once.
type builtImage struct {
	manifest []byte
	config   []byte
	layers   map[v1.Hash]*layer.Layer
}

func (i *builtImage) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *builtImage) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}
func (i *builtImage) RawManifest() ([]byte, error) { return i.manifest, nil }

func (i *builtImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}

// assemble turns a finished state into an image: the config with its
// rootfs filled in (and the extra fields, if any) and an OCI manifest
// listing the layers, with the --annotation manifest annotations.
func assemble(s *state, extra map[string]json.RawMessage, annotations map[string]string) (v1.Image, error) {
	cfg := cloneConfig(s.config)
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Layers: []v1.Descriptor{}, Annotations: annotations}
	bi := &builtImage{layers: map[v1.Hash]*layer.Layer{}}
	for _, l := range s.layers {
		d := l.Descriptor()
		d.MediaType = ociLayerType(d.MediaType)
		diffID, _ := l.DiffID()
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		m.Layers = append(m.Layers, d)
		bi.layers[d.Digest] = l
	}
	var err error
	if bi.config, err = json.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("encoding image config: %w", err)
	}
	if len(extra) > 0 {
		if bi.config, err = withFields(bi.config, extra); err != nil {
			return nil, fmt.Errorf("encoding image config: %w", err)
		}
	}
	digest, size, err := v1.SHA256(bytes.NewReader(bi.config))
	if err != nil {
		return nil, err
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: digest, Size: size}
	if bi.manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("encoding image manifest: %w", err)
	}
	return bi.image()
}

// withFields is the JSON object cfg with the fields extra added (keys
// sorted, as encoding/json writes a map).
func withFields(cfg []byte, extra map[string]json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, err
	}
	maps.Copy(m, extra)
	return json.Marshal(m)
}

// image is bi as a v1.Image that still knows its layers' origins.
func (bi *builtImage) image() (v1.Image, error) {
	img, err := partial.CompressedToImage(bi)
	if err != nil {
		return nil, err
	}
	return &originImage{Image: img, layers: bi.layers}, nil
}

// originImage is an image whose layers may note the repository holding
// their blobs (layer.Layer.Origin), for a push to mount them from there.
type originImage struct {
	v1.Image
	layers map[v1.Hash]*layer.Layer
}

// mountable is img with every layer that has an origin made mountable
// from it (registry.Config.Mountable).
func mountable(img v1.Image, reg registry.Config) (v1.Image, error) {
	oi, ok := img.(*originImage)
	if !ok {
		return img, nil
	}
	return reg.Mountable(img, func(h v1.Hash) string {
		if l := oi.layers[h]; l != nil {
			return l.Origin()
		}
		return ""
	})
}

// ImageSize is the sum of the compressed sizes of an image's blobs.
func ImageSize(img *StoredImage, manifest v1.Descriptor) int64 {
	n := manifest.Size + img.Manifest.Config.Size
	for _, l := range img.Manifest.Layers {
		n += l.Size
	}
	return n
}
