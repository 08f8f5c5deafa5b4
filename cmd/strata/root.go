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
		// Flags are parsed and checked by now; the work runs in the namespace.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return enterUserNamespace(cmd) },
	}
	root.AddCommand(newBuildCmd(), newImagesCmd(), newPushCmd(), newSaveCmd(), newPruneCmd(), newUnshareCmd())
	root.AddCommand(newDoctorCmd())
	root.AddCommand(newTagCmd(), newRmiCmd(), newInspectCmd(), newLoadCmd())
	return root
}
