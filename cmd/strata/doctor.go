package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/internal/rootless"
	"github.com/strata-build/strata/progress"
)

// newDoctorCmd reports what this environment allows a build and the mode a build would use.
// It is not annotated usesStore: it probes as the caller, outside any user namespace, the
// way a build starts.
func newDoctorCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Report what this environment allows for building, and the mode a build would use",
		Long: "doctor tries what a build needs here (namespaces, overlayfs, cgroups, the network helper, the store)\n" +
			"and prints one check a line, each missing thing with its fix, and the mode a build would use.\n" +
			"It exits 0 whatever it finds.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			r := rootless.Probe()
			if format == "json" {
				return writeDoctorJSON(cmd.OutOrStdout(), r)
			}
			return writeDoctorText(cmd.OutOrStdout(), r)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json (for scripts)")
	return cmd
}

// writeDoctorText prints the checks in aligned columns, a "fix:" line under each missing
// one, then the mode and what it lacks. Details carry text from files and tools: no escape
// sequence of theirs reaches the terminal.
func writeDoctorText(w io.Writer, r rootless.Report) error {
	statusW, nameW := 0, 0
	for _, c := range r.Checks {
		statusW, nameW = max(statusW, len(c.Status)), max(nameW, len(c.Name))
	}
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-*s  %-*s  %s\n", statusW, c.Status, nameW, c.Name, progress.Inert(c.Detail))
		if c.Status == rootless.StatusMissing && c.Fix != "" {
			fmt.Fprintf(&b, "%*s  fix: %s\n", statusW, "", progress.Inert(c.Fix))
		}
	}
	fmt.Fprintf(&b, "mode: %s\n", r.Mode)
	if r.Caveat != "" {
		fmt.Fprintf(&b, "      %s\n", r.Caveat)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// doctorCheck is a check as --format json prints it; ok is false for a missing thing only.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

type doctorReport struct {
	Checks []doctorCheck `json:"checks"`
	Mode   string        `json:"mode"`
	Caveat string        `json:"caveat"`
}

func writeDoctorJSON(w io.Writer, r rootless.Report) error {
	out := doctorReport{Checks: []doctorCheck{}, Mode: r.Mode, Caveat: r.Caveat}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, doctorCheck{Name: c.Name, Status: c.Status, OK: c.Status != rootless.StatusMissing, Detail: c.Detail, Fix: c.Fix})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
