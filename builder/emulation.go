package builder

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/binfmt"
)

// checkEmulation refuses, before any work, a stage whose RUN steps are binaries of a platform
// this host cannot run: no CPU of its own for them and no binfmt_misc emulator, or one the
// sandbox cannot reach. Without it the step would fail half-way through the build with
// "exec format error". It names the stage's first RUN line. Only a Runner that executes on
// this host (the executor) needs emulation; ONBUILD triggers are left to the step itself.
func (b *build) checkEmulation() error {
	if _, ok := b.opts.Runner.(*executor.Executor); !ok {
		return nil
	}
	for _, st := range b.toBuild(b.opts.Graph.Stages) {
		line := firstRun(st)
		if line == 0 {
			continue
		}
		if _, _, ok := b.replacedStage(st); ok {
			continue // a --build-context stands for it: its steps do not run
		}
		// The platform the steps run as: a child of a FROM --platform=$BUILDPLATFORM
		// stage runs natively whatever the target.
		p, err := dockerfile.ParsePlatform(b.runPlatform(st))
		if err != nil {
			p = st.TargetPlatform()
		}
		if err := canRun(p); err != nil {
			return stepError(b.opts.Graph.File, line, err)
		}
	}
	return nil
}

// firstRun is the line of the stage's first RUN of its own, 0 when it has none.
func firstRun(st *dockerfile.Stage) int {
	for _, step := range st.Steps {
		if _, ok := step.Command.(*instructions.RunCommand); ok && !step.OnBuild {
			return step.Location.Line
		}
	}
	return 0
}

// canRun says why a RUN step of platform p cannot run here, nil when it can. An empty
// platform is the host's; a platform binfmt knows no ELF header of is left to the kernel.
func canRun(p specs.Platform) error {
	if p.Architecture == "" {
		return nil
	}
	name := platforms.Format(p)
	s, err := binfmt.Supports(p)
	switch {
	case errors.Is(err, binfmt.ErrUnknownPlatform):
		return nil
	case err != nil:
		return fmt.Errorf("RUN for %s needs an emulator: %w", name, err)
	case s.Native:
		return nil
	case s.Handler == nil:
		return fmt.Errorf("RUN for %s needs an emulator: %s", name, noEmulator(p))
	case !s.Handler.FixBinary():
		// Without F the kernel opens the interpreter by its path when the step's binary
		// starts, inside the step's root, where it is not.
		return fmt.Errorf("RUN for %s needs an emulator the sandbox can reach: the binfmt_misc handler %s (%s) lacks the F flag; register it with F (as Debian's /usr/lib/binfmt.d files do) or see strata doctor", name, s.Handler.Name, s.Handler.Interpreter)
	}
	return nil
}

// noEmulator says why no binfmt_misc handler runs p's binaries, and the fix: a handler (or
// binfmt_misc as a whole) switched off is switched on, not installed again.
func noEmulator(p specs.Platform) string {
	if on, err := binfmt.Enabled(); err == nil && !on {
		return fmt.Sprintf("binfmt_misc is switched off; switch it on with echo 1 > %s or see strata doctor", filepath.Join(binfmt.Root, "status"))
	}
	if hs, err := binfmt.Handlers(); err == nil {
		for _, h := range hs {
			if !h.Enabled && h.Arch == p.Architecture {
				return fmt.Sprintf("the binfmt_misc handler %s is switched off; switch it on with echo 1 > %s or see strata doctor", h.Name, filepath.Join(binfmt.Root, h.Name))
			}
		}
	}
	return fmt.Sprintf("no binfmt_misc handler runs %s binaries here; install Debian's qemu-user-static (apt-get install qemu-user-static) or see strata doctor", p.Architecture)
}
