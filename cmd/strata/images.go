package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/store"
)

// refNameAnnotation is where the store keeps an image's name.
const refNameAnnotation = "org.opencontainers.image.ref.name"

func newPushCmd() *cobra.Command {
	var root string
	var insecure []string
	cmd := &cobra.Command{
		Use:         "push NAME [DEST]",
		Annotations: usesStore,
		Short:       "Push an image from the store to a registry (as DEST when given)",
		Long: `Push an image from the store to a registry, as docker push does, under its
name or DEST. A multi-platform image goes whole: each platform's image (and
attestation), then the index DEST names; layers shared by platforms once.
It prints the digest pushed (the index's for a multi-platform image).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			dest := args[len(args)-1]
			if isIndex(st, args[0]) {
				// Every platform, then the index, as buildx pushes one.
				idx, desc, err := builder.OpenIndex(cmd.Context(), st, args[0], registryConfig(insecure))
				if err != nil {
					return err
				}
				if err := builder.PushIndex(cmd.Context(), idx, []string{dest}, registryConfig(insecure), nil); err != nil {
					return oneLine(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
				return nil
			}
			img, desc, err := builder.OpenImage(cmd.Context(), st, args[0], registryConfig(insecure))
			if err != nil {
				return err
			}
			if err := builder.Push(cmd.Context(), img, []string{dest}, registryConfig(insecure)); err != nil {
				return oneLine(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), desc.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "registry host:port to reach over plain HTTP; repeatable")
	return cmd
}

// imageRow is a line of `strata images`, its fields named as docker's
// --format names them.
type imageRow struct {
	Repository, Tag, Digest, ID, CreatedSince, CreatedAt, Size string
}

// imageHeader titles the columns, as docker's table does.
var imageHeader = imageRow{"REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "CREATED AT", "SIZE"}

func newImagesCmd() *cobra.Command {
	var root, format string
	var digests, quiet bool
	cmd := &cobra.Command{
		Use:         "images",
		Annotations: usesStore,
		Short:       "List the images tagged in the store",
		Long: `List the images tagged in the store, as docker images does: the ID is the
manifest digest (docker's with the containerd image store), SIZE the sum
of the image's compressed blobs. A multi-platform image is one row: its ID
the index digest, SIZE every platform's blobs (each shared layer once),
what a push or save of it moves; CREATED is this machine's platform's.

--format takes a Go template over .Repository, .Tag, .Digest, .ID,
.CreatedSince, .CreatedAt and .Size; "table TEMPLATE" adds the header.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, table, err := rowTemplate(format, digests)
			if err != nil {
				return err
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
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
			if table && !quiet {
				if err := tmpl.Execute(tw, imageHeader); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				fmt.Fprintln(tw)
			}
			now := time.Now()
			for _, d := range idx.Manifests {
				name := d.Annotations[refNameAnnotation]
				size, created, err := imageSummary(cmd.Context(), st, d)
				if err != nil {
					return fmt.Errorf("image %s: %w", name, err)
				}
				if quiet {
					fmt.Fprintln(w, shortID(d.Digest.String()))
					continue
				}
				row := imageRow{ID: shortID(d.Digest.String()), Digest: d.Digest.String(),
					CreatedSince: "N/A", Size: humanSizePrec(size, 3)}
				row.Repository, row.Tag = splitName(name)
				if !created.IsZero() {
					row.CreatedSince = humanDuration(now.Sub(created)) + " ago"
					row.CreatedAt = created.Local().Format("2006-01-02 15:04:05 -0700 MST")
				}
				if err := tmpl.Execute(tw, row); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().BoolVar(&digests, "digests", false, "show digests")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().StringVar(&format, "format", "", `format output using a Go template ("table TEMPLATE" adds a header)`)
	return cmd
}

// imageSummary is the size and creation time `strata images` shows of
// the manifest or index d.
func imageSummary(ctx context.Context, st *store.Store, d v1.Descriptor) (int64, time.Time, error) {
	if d.MediaType.IsIndex() {
		return builder.IndexSummary(st, d)
	}
	img, err := builder.LoadImage(ctx, st, d, registryConfig(nil))
	if err != nil {
		return 0, time.Time{}, err
	}
	return builder.ImageSize(img, d), img.Config.Created.Time, nil
}

// rowTemplate is the template of a line of `strata images`, and whether
// it is a table (a header, columns aligned).
func rowTemplate(format string, digests bool) (*template.Template, bool, error) {
	table := format == "" || format == "table" || strings.HasPrefix(format, "table ")
	switch {
	case format == "" || format == "table":
		format = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
		if digests {
			format = "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
		}
	case table:
		format = strings.TrimPrefix(format, "table ")
	}
	// As docker: \t in the flag is a tab.
	format = strings.ReplaceAll(format, `\t`, "\t")
	tmpl, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, false, fmt.Errorf("--format: %w", err)
	}
	return tmpl, table, nil
}

// splitName is a store name's repository and tag, "<none>" for an image
// named by digest.
func splitName(name string) (string, string) {
	if i := strings.LastIndex(name, "@"); i >= 0 {
		return name[:i], "<none>"
	}
	slash := strings.LastIndex(name, "/")
	if i := strings.LastIndex(name, ":"); i > slash {
		return name[:i], name[i+1:]
	}
	return name, "<none>"
}

// shortID is the 12 hex digits docker shows of an image ID.
func shortID(digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return hex[:min(12, len(hex))]
}

// humanDuration is go-units' HumanDuration, which docker's CREATED column
// shows followed by " ago".
func humanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	minutes := int(d.Minutes())
	hours := int(d.Hours() + 0.5)
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// humanSizePrec is go-units' HumanSizeWithPrecision: decimal units, prec
// significant digits ("7.8MB" with 3, as docker images shows sizes).
func humanSizePrec(n int64, prec int) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", prec, f, units[i])
}

func newSaveCmd() *cobra.Command {
	var root, output, format string
	var insecure []string
	cmd := &cobra.Command{
		Use:         "save NAME [-o FILE|-] [--format oci|docker]",
		Annotations: usesStore,
		Short:       "Write an image from the store to an archive (stdout without -o, or with -o -)",
		Long: `Write an image from the store to an archive, as docker save does: an OCI
archive (--format oci, the default) or a docker archive (--format docker).
A multi-platform image is written whole to an OCI archive (its index, every
platform); a docker archive holds one platform, so it is refused for one of
several.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "oci" && format != "docker" {
				return fmt.Errorf("save: --format %q: want oci or docker", format)
			}
			if output == "" {
				output = "-"
			}
			if output == "-" && isTerminal(cmd.OutOrStdout()) {
				return errArchiveToTerminal("save -o -")
			}
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			out := builder.Output{Type: format, Dest: output, Names: []string{args[0]}, Stdout: cmd.OutOrStdout()}
			if isIndex(st, args[0]) {
				idx, _, err := builder.OpenIndex(cmd.Context(), st, args[0], registryConfig(insecure))
				if err != nil {
					return err
				}
				if format == "docker" {
					im, err := idx.IndexManifest()
					if err != nil {
						return err
					}
					if len(store.PlatformImages(im)) > 1 {
						return builder.DockerPlatformsError("save --format docker", "save it with --format oci, or push it", im)
					}
				}
				return oneLine(builder.ExportIndex(cmd.Context(), idx, out))
			}
			img, _, err := builder.OpenImage(cmd.Context(), st, args[0], registryConfig(insecure))
			if err != nil {
				return err
			}
			return oneLine(builder.Export(cmd.Context(), img, out))
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().StringVarP(&output, "output", "o", "", `archive to write; "-" or none: stdout`)
	cmd.Flags().StringVar(&format, "format", "oci", "archive format: oci or docker")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "registry host:port to reach over plain HTTP, for layers not yet downloaded; repeatable")
	return cmd
}

// errArchiveToTerminal refuses to write an archive on a terminal, as
// docker save does: what is the flag that sent it there.
func errArchiveToTerminal(what string) error {
	return fmt.Errorf("%s: refusing to write an archive to a terminal: redirect stdout or write to a file", what)
}

func newPruneCmd() *cobra.Command {
	var root, keepStorage string
	var force, all bool
	var filters []string
	cmd := &cobra.Command{
		Use:         "prune",
		Annotations: usesStore,
		Short:       "Remove the build cache: cache entries, blobs no tagged image uses, cache mounts",
		Long: `Remove the build cache, as docker builder prune does: the cache entries,
the blobs and extracted snapshots no tagged image uses, and the cache
mounts (RUN --mount=type=cache). Tagged images always stay whole.

--all also removes the extracted snapshots of tagged images (made again
when a build uses them). --keep-storage SIZE keeps the most recently used
build cache up to SIZE (docker's units: 512MB, 10GB; powers of 1024).
--filter until=DURATION keeps what was used less than DURATION ago (24h).

Builds hold the store open; prune waits until none does (and new builds wait
for prune), so it never removes what a running build uses. With --force it
fails at once instead of waiting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := store.PruneOptions{All: all}
			if keepStorage != "" {
				n, err := parseRAMSize(keepStorage)
				if err != nil {
					return fmt.Errorf("--keep-storage %q: %w", keepStorage, err)
				}
				opts.KeepStorage = n
			}
			for _, f := range filters {
				k, v, _ := strings.Cut(f, "=")
				if k != "until" {
					return fmt.Errorf("--filter %q: want until=DURATION", f)
				}
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					return fmt.Errorf("--filter %q: want until=DURATION, as 24h or 90m", f)
				}
				opts.Until = d
			}
			if root == "" {
				var err error
				if root, err = defaultRoot(); err != nil {
					return err
				}
			}
			waiting := func() {
				fmt.Fprintln(cmd.ErrOrStderr(), "strata: waiting for the builds using the store to finish (Ctrl-C to stop; --force fails instead)")
			}
			st, err := store.OpenExclusive(cmd.Context(), root, !force, waiting)
			if errors.Is(err, store.ErrStoreInUse) {
				return fmt.Errorf("prune --force: %w", err)
			}
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := st.PruneWith(opts)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "removed %d blobs, %d snapshots, %d cache entries, %d cache mounts\n", r.Blobs, r.Snapshots, r.CacheEntries, r.CacheMounts)
			fmt.Fprintf(w, "Total reclaimed space: %s\n", humanSizePrec(r.Bytes, 3))
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "fail at once when a build is using the store, instead of waiting")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also remove the extracted snapshots of tagged images")
	cmd.Flags().StringVar(&keepStorage, "keep-storage", "", "amount of build cache to keep (512MB, 10GB)")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "until=DURATION: keep what was used more recently; repeatable")
	return cmd
}

// parseRAMSize reads a size as docker's --keep-storage does (go-units'
// RAMInBytes): powers of 1024, "10GB", "512m", "1.5g", a plain byte count.
func parseRAMSize(s string) (int64, error) {
	m := ramSize.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New("want a size such as 512MB or 10GB")
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, errors.New("want a size such as 512MB or 10GB")
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[strings.ToLower(m[2])]
	return int64(f * mult), nil
}

var ramSize = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

// isIndex reports whether name tags a multi-platform index in the store
// (false when it tags nothing: the image path then says so).
func isIndex(st *store.Store, name string) bool {
	d, err := st.Resolve(builder.StoreName(name))
	return err == nil && d.MediaType.IsIndex()
}
