package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("build: not implemented")
		},
	}
}
