package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/store"
)

// templateFuncs are the functions docker's --format templates offer that
// strata's do too.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// resolveImage finds what arg names in the index: a name (":latest" when
// it has no tag), else an image ID or a prefix of one (sha256: optional),
// as docker does. It returns the manifest and every name it has.
func resolveImage(idx *v1.IndexManifest, arg string) (v1.Descriptor, []string, error) {
	want := builder.StoreName(arg)
	var found *v1.Descriptor
	for i, d := range idx.Manifests {
		if d.Annotations[refNameAnnotation] == want {
			found = &idx.Manifests[i]
			break
		}
	}
	if found == nil {
		hex := strings.TrimPrefix(arg, "sha256:")
		if isHex(hex) {
			for i, d := range idx.Manifests {
				if strings.HasPrefix(d.Digest.Hex, hex) {
					if found != nil && found.Digest != d.Digest {
						return v1.Descriptor{}, nil, fmt.Errorf("image ID %s is ambiguous: give more of it", arg)
					}
					found = &idx.Manifests[i]
				}
			}
		}
	}
	if found == nil {
		return v1.Descriptor{}, nil, fmt.Errorf("no such image: %s", arg)
	}
	var names []string
	for _, d := range idx.Manifests {
		if d.Digest == found.Digest {
			names = append(names, d.Annotations[refNameAnnotation])
		}
	}
	return *found, names, nil
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func newTagCmd() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:         "tag SOURCE TARGET",
		Annotations: usesStore,
		Short:       "Give an image of the store another name",
		Args:        cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := builder.StoreName(args[1])
			if _, err := name.NewTag(target); err != nil {
				return fmt.Errorf("tag: target %q: invalid reference format: %w", args[1], err)
			}
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			idx, err := st.Index()
			if err != nil {
				return err
			}
			desc, _, err := resolveImage(idx, args[0])
			if err != nil {
				return err
			}
			return st.Tag(target, desc)
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	return cmd
}

func newRmiCmd() *cobra.Command {
	var root string
	var force bool
	cmd := &cobra.Command{
		Use:         "rmi [-f] NAME...",
		Annotations: usesStore,
		Short:       "Untag images; what no tag uses any more goes at the next prune",
		Long: `Remove names from the store, as docker rmi does: NAME is a name (":latest"
when it has no tag) or an image ID. An ID whose image has several names is
refused unless -f, which removes them all. The image's blobs stay until
"strata prune" removes what no tagged image uses.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			// As docker: every name is tried; each failure is a line, the
			// last one main's, and the exit status 1.
			var failed []error
			for _, arg := range args {
				if err := untag(cmd.OutOrStdout(), st, arg, force); err != nil {
					failed = append(failed, err)
				}
			}
			if len(failed) == 0 {
				return nil
			}
			for _, err := range failed[:len(failed)-1] {
				fmt.Fprintln(cmd.ErrOrStderr(), "strata:", err)
			}
			return failed[len(failed)-1]
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove every name of an image given by ID")
	return cmd
}

// untag removes the name arg, or the names of the image ID arg, printing
// each as docker does.
func untag(w io.Writer, st *store.Store, arg string, force bool) error {
	idx, err := st.Index()
	if err != nil {
		return err
	}
	desc, names, err := resolveImage(idx, arg)
	if err != nil {
		return err
	}
	if byName := builder.StoreName(arg); desc.Annotations[refNameAnnotation] == byName {
		names = []string{byName}
	} else if len(names) > 1 && !force {
		return fmt.Errorf("unable to delete %s (must be forced): the image has %d names: %s", shortID(desc.Digest.String()), len(names), strings.Join(names, ", "))
	}
	for _, n := range names {
		if err := st.Untag(n); err != nil {
			return err
		}
		fmt.Fprintf(w, "Untagged: %s\n", n)
	}
	return nil
}

// inspectImage is `strata inspect`'s object: docker image inspect's
// fields, with the layers and history docker history shows.
type inspectImage struct {
	Id string //nolint:revive // docker's name, which --format templates use

	RepoTags     []string
	ConfigDigest string
	Created      string `json:",omitempty"`
	Author       string `json:",omitempty"`
	Architecture string
	Variant      string `json:",omitempty"`
	Os           string
	Config       v1.Config
	Size         int64
	RootFS       inspectRootFS
	Layers       []inspectLayer
	History      []inspectHistory
}

type inspectRootFS struct {
	Type   string
	Layers []string
}

type inspectLayer struct {
	Digest, DiffID, MediaType string
	Size                      int64
}

// inspectHistory is a step of the image's history; Layer is the digest of
// the layer it made, empty for a step without one.
type inspectHistory struct {
	Created    string `json:",omitempty"`
	CreatedBy  string
	Comment    string `json:",omitempty"`
	EmptyLayer bool   `json:",omitempty"`
	Layer      string `json:",omitempty"`
	Size       int64
}

func newInspectCmd() *cobra.Command {
	var root, format, platform string
	cmd := &cobra.Command{
		Use:         "inspect NAME...",
		Annotations: usesStore,
		Short:       "Show images' configs, layers and history as JSON",
		Long: `Show images as docker image inspect does (a JSON array), with their layers
(digests and sizes) and their history, as docker history shows it. NAME is a
name or an image ID. --format takes a Go template over an image ({{.Id}},
{{.Config.Env}}, {{json .History}}).

A multi-platform image shows as its index, as docker buildx imagetools
inspect shows it: Id (the index digest), RepoTags, MediaType, Size (every
platform's blobs), Annotations and Manifests (Digest, MediaType, Size,
Platform, Annotations; attestations are unknown/unknown). --platform
linux/arm64 shows that platform's image instead.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *template.Template
			if format != "" {
				var err error
				if tmpl, err = template.New("format").Funcs(templateFuncs).Parse(format); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
			}
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			idx, err := st.Index()
			if err != nil {
				return err
			}
			var want *v1.Platform
			if platform != "" {
				p, err := platforms.Parse(platform)
				if err != nil {
					return fmt.Errorf("--platform %q: %w", platform, err)
				}
				p = platforms.Normalize(p)
				want = &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
			}
			var out []any
			for _, arg := range args {
				desc, names, err := resolveImage(idx, arg)
				if err != nil {
					return err
				}
				if desc.MediaType.IsIndex() && want == nil {
					o, err := inspectIndexOf(st, desc, names)
					if err != nil {
						return fmt.Errorf("image %s: %w", arg, err)
					}
					out = append(out, o)
					continue
				}
				if desc.MediaType.IsIndex() {
					if desc, err = platformChild(st, desc, arg, want); err != nil {
						return err
					}
				}
				img, err := builder.LoadImage(cmd.Context(), st, desc, registryConfig(nil))
				if err != nil {
					return fmt.Errorf("image %s: %w", arg, err)
				}
				if want != nil && !matchesPlatform(img.Config.ConfigFile, *want) {
					return fmt.Errorf("image %s is for %s, not %s", arg, configPlatformName(img.Config.ConfigFile), platform)
				}
				out = append(out, inspectOf(img, desc, names))
			}
			w := cmd.OutOrStdout()
			if tmpl != nil {
				for _, o := range out {
					if err := tmpl.Execute(w, o); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					fmt.Fprintln(w)
				}
				return nil
			}
			b, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", b)
			return err
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().StringVarP(&format, "format", "f", "", "format the output using a Go template")
	cmd.Flags().StringVar(&platform, "platform", "", "of a multi-platform image, inspect the image for this platform (linux/arm64)")
	return cmd
}

// inspectIndex is `strata inspect`'s object for a multi-platform image:
// the index and its manifests with their platforms, as docker buildx
// imagetools inspect shows them.
type inspectIndex struct {
	Id string //nolint:revive // as inspectImage's

	RepoTags    []string
	MediaType   string
	Size        int64
	Annotations map[string]string `json:",omitempty"`
	Manifests   []inspectManifest
}

type inspectManifest struct {
	Digest    string
	MediaType string
	Size      int64
	// Platform is os/arch[/variant]; an attestation's is unknown/unknown.
	Platform    string            `json:",omitempty"`
	Annotations map[string]string `json:",omitempty"`
}

func inspectIndexOf(st *store.Store, desc v1.Descriptor, names []string) (inspectIndex, error) {
	im, err := st.IndexManifest(desc.Digest)
	if err != nil {
		return inspectIndex{}, err
	}
	size, _, err := builder.IndexSummary(st, desc)
	if err != nil {
		return inspectIndex{}, err
	}
	o := inspectIndex{Id: desc.Digest.String(), RepoTags: names, MediaType: string(desc.MediaType), Size: size,
		Annotations: im.Annotations, Manifests: []inspectManifest{}}
	for _, d := range im.Manifests {
		m := inspectManifest{Digest: d.Digest.String(), MediaType: string(d.MediaType), Size: d.Size, Annotations: d.Annotations}
		if d.Platform != nil {
			m.Platform = d.Platform.String()
		}
		o.Manifests = append(o.Manifests, m)
	}
	return o, nil
}

// platformChild is the descriptor of the index desc's image for want.
func platformChild(st *store.Store, desc v1.Descriptor, arg string, want *v1.Platform) (v1.Descriptor, error) {
	im, err := st.IndexManifest(desc.Digest)
	if err != nil {
		return desc, fmt.Errorf("image %s: %w", arg, err)
	}
	var have []string
	for _, d := range store.PlatformImages(im) {
		if d.Platform != nil && platforms.NewMatcher(specPlatform(*want)).Match(specPlatform(*d.Platform)) {
			return d, nil
		}
		if d.Platform != nil {
			have = append(have, d.Platform.String())
		}
	}
	return desc, fmt.Errorf("image %s has no image for %s: it holds %s", arg, want, strings.Join(have, ", "))
}

func specPlatform(p v1.Platform) specs.Platform {
	return platforms.Normalize(specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
}

func matchesPlatform(cfg v1.ConfigFile, want v1.Platform) bool {
	return platforms.NewMatcher(specPlatform(want)).Match(specPlatform(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}))
}

func configPlatformName(cfg v1.ConfigFile) string {
	return (&v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}).String()
}

func inspectOf(img *builder.StoredImage, desc v1.Descriptor, names []string) inspectImage {
	c := img.Config
	o := inspectImage{Id: desc.Digest.String(), RepoTags: names, ConfigDigest: img.Manifest.Config.Digest.String(),
		Author: c.Author, Architecture: c.Architecture, Variant: c.Variant, Os: c.OS, Config: c.Config,
		Size: builder.ImageSize(img, desc), RootFS: inspectRootFS{Type: c.RootFS.Type, Layers: []string{}},
		Layers: []inspectLayer{}, History: []inspectHistory{}}
	if !c.Created.IsZero() {
		o.Created = c.Created.UTC().Format(time.RFC3339Nano)
	}
	for i, l := range img.Manifest.Layers {
		diffID := ""
		if i < len(c.RootFS.DiffIDs) {
			diffID = c.RootFS.DiffIDs[i].String()
		}
		o.RootFS.Layers = append(o.RootFS.Layers, diffID)
		o.Layers = append(o.Layers, inspectLayer{Digest: l.Digest.String(), DiffID: diffID, MediaType: string(l.MediaType), Size: l.Size})
	}
	next := 0
	for _, h := range c.History {
		e := inspectHistory{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.Created.IsZero() {
			e.Created = h.Created.UTC().Format(time.RFC3339Nano)
		}
		if !h.EmptyLayer && next < len(o.Layers) {
			e.Layer, e.Size = o.Layers[next].Digest, o.Layers[next].Size
			next++
		}
		o.History = append(o.History, e)
	}
	return o
}

func newLoadCmd() *cobra.Command {
	var root, input string
	cmd := &cobra.Command{
		Use:         "load [-i FILE|DIR|-]",
		Annotations: usesStore,
		Short:       "Load images from an archive (docker or OCI) or an OCI layout into the store",
		Long: `Load images into the store, as docker load does, with their names: a
docker archive (docker save, strata save --format docker), an OCI archive
(compressed or not), or an OCI layout directory. Without -i, or with -i -,
the archive is read from stdin. An OCI image keeps its digest; an image of
a docker archive keeps its config (docker's image ID) and gets an OCI
manifest. A multi-platform image (an index of several platforms, as buildx
writes) is loaded whole, every platform and attestation checked against
its digest, and its name tags the index; an index of one platform loads
as that image.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				input = "-"
			}
			var r io.Reader = cmd.InOrStdin()
			what := input
			if input == "-" {
				what = "stdin"
				if f, ok := r.(*os.File); ok && isTerminal(f) {
					return errors.New("load: stdin is a terminal: pass -i FILE or redirect an archive to stdin")
				}
			} else {
				fi, err := os.Stat(input)
				if err != nil {
					return fmt.Errorf("load -i: %w", err)
				}
				if !fi.IsDir() {
					f, err := os.Open(input)
					if err != nil {
						return fmt.Errorf("load -i: %w", err)
					}
					defer f.Close()
					r = f
				}
			}
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			images, err := st.Load(cmd.Context(), input, r)
			if err != nil {
				return oneLine(fmt.Errorf("load: %s: %w", what, err))
			}
			w := cmd.OutOrStdout()
			for _, img := range images {
				if len(img.Names) == 0 {
					fmt.Fprintf(w, "Loaded image ID: %s\n", img.Desc.Digest)
				}
				for _, n := range img.Names {
					n = builder.StoreName(n)
					if _, err := name.NewTag(n); err != nil {
						return fmt.Errorf("load: %s: image name %q: %w", what, n, err)
					}
					if err := st.Tag(n, img.Desc); err != nil {
						return err
					}
					fmt.Fprintf(w, "Loaded image: %s\n", n)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().StringVarP(&input, "input", "i", "", `archive or OCI layout directory to read; "-" or none: stdin`)
	return cmd
}
