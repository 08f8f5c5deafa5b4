package main

import "github.com/spf13/cobra"

// newRootCmd assembles the CLI. Environment variables are read here and in the
// subcommands only, and passed down to the packages as options.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Build OCI container images from Dockerfiles, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newBuildCmd(), newImagesCmd(), newPushCmd(), newSaveCmd(), newPruneCmd())
	return root
}
