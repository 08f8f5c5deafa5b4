package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/platforms"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/internal/binfmt"
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
			"and prints one check a line, each missing thing with its fix, and the mode a build would use;\n" +
			"then the emulators binfmt_misc has registered and the platforms whose RUN steps can run here.\n" +
			"It exits 0 whatever it finds.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			r, e := rootless.Probe(), probeEmulation()
			if format == "json" {
				return writeDoctorJSON(cmd.OutOrStdout(), r, e)
			}
			if err := writeDoctorText(cmd.OutOrStdout(), r); err != nil {
				return err
			}
			return writeEmulationText(cmd.OutOrStdout(), e)
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
	Checks    []doctorCheck `json:"checks"`
	Mode      string        `json:"mode"`
	Caveat    string        `json:"caveat"`
	Emulation emulation     `json:"emulation"`
}

func writeDoctorJSON(w io.Writer, r rootless.Report, e emulation) error {
	out := doctorReport{Checks: []doctorCheck{}, Mode: r.Mode, Caveat: r.Caveat, Emulation: e}
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

// emulation is what doctor reports of binfmt_misc: the registered handlers and, for each
// platform strata knows, whether a RUN step of it can run here.
type emulation struct {
	// BinfmtMisc is "mounted", or why the handlers could not be read.
	BinfmtMisc string             `json:"binfmt_misc"`
	Handlers   []emulationHandler `json:"handlers"`
	Platforms  []emulationTarget  `json:"platforms"`
	// Fix is the one-line fix for the platforms that cannot run, "" when all can.
	Fix string `json:"fix"`
}

type emulationHandler struct {
	Name string `json:"name"`
	// Architecture is the OCI architecture whose ELF binaries the handler's magic matches,
	// "" for another one.
	Architecture string `json:"architecture"`
	Interpreter  string `json:"interpreter"`
	Flags        string `json:"flags"`
	Enabled      bool   `json:"enabled"`
	// FixBinary is the F flag; without it a RUN step in the sandbox cannot find the
	// interpreter, and Note says so.
	FixBinary bool   `json:"fix_binary"`
	Note      string `json:"note"`
}

type emulationTarget struct {
	Platform string `json:"platform"`
	// Runs: a RUN step of the platform can run here (natively, or emulated by a handler
	// with the F flag).
	Runs bool `json:"runs"`
	// How is "native", "emulated" or "" (no emulator), and Handler the one that emulates.
	How     string `json:"how"`
	Handler string `json:"handler"`
	Detail  string `json:"detail"`
}

const (
	noFixBinary  = "no F flag: a RUN step in the sandbox cannot find the interpreter; register it with F, as Debian's /usr/lib/binfmt.d/qemu-*.conf do"
	emulationFix = "apt-get install qemu-user-static; where no systemd registers its handlers, write each line of /usr/lib/binfmt.d/qemu-*.conf to /proc/sys/fs/binfmt_misc/register"
)

// probeEmulation reads binfmt_misc. Native platforms run whatever it holds.
func probeEmulation() emulation {
	e := emulation{BinfmtMisc: "mounted", Handlers: []emulationHandler{}, Platforms: []emulationTarget{}}
	fix := emulationFix
	hs, err := binfmt.Handlers()
	if err != nil {
		e.BinfmtMisc = err.Error()
		if errors.Is(err, binfmt.ErrNotMounted) {
			fix = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; " + emulationFix
		}
	} else if on, _ := binfmt.Enabled(); !on {
		e.BinfmtMisc = "mounted, disabled: every handler is off"
		fix = "echo 1 > /proc/sys/fs/binfmt_misc/status"
	}
	for _, h := range hs {
		eh := emulationHandler{Name: h.Name, Architecture: h.Arch, Interpreter: h.Interpreter, Flags: h.Flags, Enabled: h.Enabled, FixBinary: h.FixBinary()}
		if h.Arch != "" && h.Enabled && !h.FixBinary() {
			eh.Note = noFixBinary
		}
		e.Handlers = append(e.Handlers, eh)
	}
	for _, p := range binfmt.Platforms() {
		t := emulationTarget{Platform: platforms.Format(p)}
		s, err := binfmt.Supports(p)
		switch {
		case errors.Is(err, binfmt.ErrNotMounted):
			t.Detail = "no emulator: binfmt_misc is not mounted"
		case err != nil:
			t.Detail = err.Error()
		case s.Native:
			t.Runs, t.How, t.Detail = true, "native", "native"
		case s.Handler != nil:
			t.How, t.Handler = "emulated", s.Handler.Name
			t.Runs = s.Handler.FixBinary()
			t.Detail = fmt.Sprintf("emulated by %s (%s)", s.Handler.Name, s.Handler.Interpreter)
			if !t.Runs {
				t.Detail += ", " + noFixBinary
			}
		default:
			t.Detail = "no emulator"
		}
		if !t.Runs {
			e.Fix = fix
		}
		e.Platforms = append(e.Platforms, t)
	}
	return e
}

// writeEmulationText prints the emulation section: binfmt_misc's state, the handlers of
// architectures strata builds for (the others named on one line), the platforms RUN steps
// run for, and the ones they do not with the fix.
func writeEmulationText(w io.Writer, e emulation) error {
	var b strings.Builder
	b.WriteString("emulation:\n")
	fmt.Fprintf(&b, "  binfmt_misc: %s\n", progress.Inert(e.BinfmtMisc))
	nameW, archW, flagsW := 0, 0, 0
	var others []string
	for _, h := range e.Handlers {
		if h.Architecture == "" {
			others = append(others, h.Name)
			continue
		}
		nameW, archW, flagsW = max(nameW, len(h.Name)), max(archW, len(h.Architecture)), max(flagsW, len(h.Flags))
	}
	for _, h := range e.Handlers {
		if h.Architecture == "" {
			continue
		}
		line := fmt.Sprintf("  %-*s  %-*s  flags %-*s  %s", nameW, h.Name, archW, h.Architecture, flagsW, h.Flags, h.Interpreter)
		if !h.Enabled {
			line += "  (disabled)"
		}
		if h.Note != "" {
			line += "  " + h.Note
		}
		b.WriteString(progress.Inert(line) + "\n")
	}
	if len(others) > 0 {
		fmt.Fprintf(&b, "  %d other handlers, for architectures strata does not build: %s\n", len(others), progress.Inert(strings.Join(others, " ")))
	}
	var runs, not []string
	for _, t := range e.Platforms {
		switch {
		case t.Runs && t.How == "native":
			runs = append(runs, t.Platform+" (native)")
		case t.Runs:
			runs = append(runs, t.Platform)
		default:
			not = append(not, t.Platform)
		}
	}
	fmt.Fprintf(&b, "RUN steps run for: %s\n", strings.Join(runs, ", "))
	if len(not) > 0 {
		fmt.Fprintf(&b, "RUN steps cannot run for: %s\n", strings.Join(not, ", "))
		fmt.Fprintf(&b, "  fix: %s\n", e.Fix)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
