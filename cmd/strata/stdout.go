package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
)

// checkStdoutOutputs refuses, before any step runs, what --output cannot
// send to stdout (dest=-): a directory, two archives at once, or an
// archive on a terminal. The progress then goes to stderr only.
func checkStdoutOutputs(cmd *cobra.Command, outs []builder.Output) error {
	n := 0
	for _, o := range outs {
		if o.Dest != "-" {
			continue
		}
		switch o.Type {
		case "oci", "docker", "tar":
		default:
			return fmt.Errorf("--output type=%s,dest=-: only an archive (type=oci, docker or tar) can go to stdout", o.Type)
		}
		if n++; n > 1 {
			return fmt.Errorf("--output: two outputs with dest=-: stdout can carry one archive")
		}
		if isTerminal(cmd.OutOrStdout()) {
			return errArchiveToTerminal(fmt.Sprintf("--output type=%s,dest=-", o.Type))
		}
	}
	return nil
}
