package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/store"
)

// refNameAnnotation is where the store keeps an image's name.
const refNameAnnotation = "org.opencontainers.image.ref.name"

func newImagesCmd() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:         "images",
		Annotations: usesStore,
		Short:       "List the images tagged in the store",
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			idx, err := st.Index()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIGEST\tCREATED\tSIZE")
			for _, d := range idx.Manifests {
				img, err := builder.LoadImage(cmd.Context(), st, d, registryConfig(nil))
				if err != nil {
					return fmt.Errorf("image %s: %w", d.Annotations[refNameAnnotation], err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", d.Annotations[refNameAnnotation], d.Digest,
					img.Config.Created.UTC().Format("2006-01-02T15:04:05Z"), builder.ImageSize(img, d))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	return cmd
}

func newPushCmd() *cobra.Command {
	var root string
	var insecure []string
	cmd := &cobra.Command{
		Use:         "push NAME [DEST]",
		Annotations: usesStore,
		Short:       "Push an image from the store to a registry (as DEST when given)",
		Args:        cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			img, desc, err := builder.OpenImage(cmd.Context(), st, args[0], registryConfig(insecure))
			if err != nil {
				return err
			}
			dest := args[len(args)-1]
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

func newSaveCmd() *cobra.Command {
	var root, output, format string
	var insecure []string
	cmd := &cobra.Command{
		Use:         "save NAME -o FILE [--format oci|docker]",
		Annotations: usesStore,
		Short:       "Write an image from the store to an archive",
		Args:        cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("save: -o FILE is required")
			}
			if format != "oci" && format != "docker" {
				return fmt.Errorf("save: --format %q: want oci or docker", format)
			}
			st, err := openStore(root)
			if err != nil {
				return err
			}
			defer st.Close()
			img, _, err := builder.OpenImage(cmd.Context(), st, args[0], registryConfig(insecure))
			if err != nil {
				return err
			}
			return oneLine(builder.Export(cmd.Context(), img, builder.Output{Type: format, Dest: output, Names: []string{args[0]}}))
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().StringVarP(&output, "output", "o", "", "archive to write")
	cmd.Flags().StringVar(&format, "format", "oci", "archive format: oci or docker")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "registry host:port to reach over plain HTTP, for layers not yet downloaded; repeatable")
	return cmd
}

func newPruneCmd() *cobra.Command {
	var root string
	var force bool
	cmd := &cobra.Command{
		Use:         "prune",
		Annotations: usesStore,
		Short:       "Empty the build cache and remove blobs no tagged image uses",
		Long: `Empty the build cache and remove the blobs and snapshots no tagged image uses.

Builds hold the store open; prune waits until none does (and new builds wait
for prune), so it never removes what a running build uses. With --force it
fails at once instead of waiting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			r, err := st.Prune()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d blobs, %d snapshots, %d cache entries\n", r.Blobs, r.Snapshots, r.CacheEntries)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "directory of strata's store and cache")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "fail at once when a build is using the store, instead of waiting")
	return cmd
}
