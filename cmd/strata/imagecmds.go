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

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	var root, format string
	cmd := &cobra.Command{
		Use:         "inspect NAME...",
		Annotations: usesStore,
		Short:       "Show images' configs, layers and history as JSON",
		Long: `Show images as docker image inspect does (a JSON array), with their layers
(digests and sizes) and their history, as docker history shows it. NAME is a
name or an image ID. --format takes a Go template over an image ({{.Id}},
{{.Config.Env}}, {{json .History}}).`,
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
			var out []inspectImage
			for _, arg := range args {
				desc, names, err := resolveImage(idx, arg)
				if err != nil {
					return err
				}
				img, err := builder.LoadImage(cmd.Context(), st, desc, registryConfig(nil))
				if err != nil {
					return fmt.Errorf("image %s: %w", arg, err)
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
	return cmd
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
manifest.`,
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
