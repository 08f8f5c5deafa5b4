package builder

import (
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
)

// historyComment is what BuildKit writes in every history entry's comment.
const historyComment = "buildkit.dockerfile.v0"

// applyConfig applies a step to the config and returns the history
// entry's created_by as BuildKit writes it ("" for ONBUILD, which BuildKit
// records without history). RUN, COPY and ADD only get their text here.
func applyConfig(file *ImageConfig, st dockerfile.Step, sm *stageMeta) (string, error) {
	cfg := &file.Config
	switch c := st.Command.(type) {
	case *instructions.RunCommand:
		return "RUN " + runCommandString(runArgs(c, cfg.Shell), st.Args, st.Env) + " # buildkit", nil
	case *instructions.CopyCommand:
		return copyHistory("COPY", c.SourcesAndDest, c.Chown, c.Chmod), nil
	case *instructions.AddCommand:
		return copyHistory("ADD", c.SourcesAndDest, c.Chown, c.Chmod), nil
	case *instructions.EnvCommand:
		return applyEnv(cfg, c), nil
	case *instructions.LabelCommand:
		return applyLabels(cfg, c), nil
	case *instructions.WorkdirCommand:
		cfg.WorkingDir = normalizeWorkdir(cfg.WorkingDir, c.Path)
		return "WORKDIR " + cfg.WorkingDir, nil
	case *instructions.UserCommand:
		cfg.User = c.User
		return "USER " + c.User, nil
	case *instructions.ExposeCommand:
		return applyExpose(cfg, st.Ports), nil
	case *instructions.VolumeCommand:
		return applyVolumes(cfg, c)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
		return "STOPSIGNAL " + c.Signal, nil
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
		return fmt.Sprintf("SHELL %v", c.Shell), nil
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
		return "", nil
	case *instructions.MaintainerCommand:
		// BuildKit sets the author, not a label.
		file.Author = c.Maintainer
		return "MAINTAINER " + c.Maintainer, nil
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		// ggcr's type has no field for it; ImageConfig writes it.
		file.StartInterval = h.StartInterval
		return fmt.Sprintf("HEALTHCHECK %+v", *h), nil
	}
	return applyCommandConfig(cfg, st, sm)
}

// stageMeta is what the config of a stage cannot tell: whether CMD was
// set in this stage (ENTRYPOINT clears an inherited CMD only).
type stageMeta struct {
	cmdSet bool
}

// applyCommandConfig handles CMD, ENTRYPOINT and ARG.
func applyCommandConfig(cfg *v1.Config, st dockerfile.Step, sm *stageMeta) (string, error) {
	switch c := st.Command.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = withShell(cfg.Shell, c.ShellDependantCmdLine)
		cfg.ArgsEscaped = true
		sm.cmdSet = true
		return fmt.Sprintf("CMD %q", cfg.Cmd), nil
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = withShell(cfg.Shell, c.ShellDependantCmdLine)
		if !sm.cmdSet {
			cfg.Cmd = nil
		}
		return fmt.Sprintf("ENTRYPOINT %q", cfg.Entrypoint), nil
	case *instructions.ArgCommand:
		return argHistory(c), nil
	}
	// dockerfile's support table refuses the instructions not handled here.
	return "", fmt.Errorf("internal error: no config handling for %s", strings.ToUpper(st.Command.Name()))
}

func withShell(shell []string, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), shell...), strings.Join(c.CmdLine, " "))
}

func applyEnv(cfg *v1.Config, c *instructions.EnvCommand) string {
	msg := "ENV"
	for _, kv := range c.Env {
		cfg.Env = addEnv(cfg.Env, kv.Key, kv.Value)
		msg += " " + kv.String()
	}
	return msg
}

// addEnv sets key in env, in place when present (Docker keeps the order).
func addEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

func applyLabels(cfg *v1.Config, c *instructions.LabelCommand) string {
	msg := "LABEL"
	for _, kv := range c.Labels {
		cfg.Labels = setLabel(cfg.Labels, kv.Key, kv.Value)
		msg += " " + kv.String()
	}
	return msg
}

func setLabel(labels map[string]string, k, v string) map[string]string {
	if labels == nil {
		labels = map[string]string{}
	}
	labels[k] = v
	return labels
}

func applyExpose(cfg *v1.Config, ports []string) string {
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		cfg.ExposedPorts[p] = struct{}{}
	}
	return fmt.Sprintf("EXPOSE %v", ports)
}

func applyVolumes(cfg *v1.Config, c *instructions.VolumeCommand) (string, error) {
	if cfg.Volumes == nil {
		cfg.Volumes = map[string]struct{}{}
	}
	for _, v := range c.Volumes {
		if v == "" {
			return "", fmt.Errorf("VOLUME specified can not be an empty string")
		}
		cfg.Volumes[v] = struct{}{}
	}
	return fmt.Sprintf("VOLUME %v", c.Volumes), nil
}

// normalizeWorkdir resolves a relative WORKDIR against the previous one,
// as Docker does.
func normalizeWorkdir(cur, p string) string {
	if !path.IsAbs(p) {
		if cur == "" {
			cur = "/"
		}
		p = path.Join(cur, p)
	}
	return path.Clean(p)
}

// argHistory is "ARG K=V ...", with the values the build uses (Expand
// fills them in from --build-arg, the default or the global scope).
func argHistory(c *instructions.ArgCommand) string {
	parts := make([]string, 0, len(c.Args))
	for _, a := range c.Args {
		s := a.Key
		if a.Value != nil {
			s += "=" + *a.Value
		}
		parts = append(parts, s)
	}
	return "ARG " + strings.Join(parts, " ")
}

func copyHistory(name string, sd instructions.SourcesAndDest, chown, chmod string) string {
	msg := name
	if chown != "" {
		msg += " --chown=" + chown
	}
	if chmod != "" {
		msg += " --chmod=" + chmod
	}
	for _, s := range sd.SourcePaths {
		msg += " " + s
	}
	for _, s := range sd.SourceContents {
		msg += " <<" + s.Path
	}
	return msg + " " + sd.DestPath + " # buildkit"
}

// runCommandString is BuildKit's history text for RUN: the build args in
// scope as "|N K=V ..." before the command. As in BuildKit, an arg's value
// is the one in the RUN's environment env ("K=V") when the key is there,
// so an ENV after the ARG wins and an ARG without a value keeps the value
// of the one before it; the arg's own value otherwise.
func runCommandString(args []string, buildArgs []dockerfile.Arg, env []string) string {
	values := envValues(env)
	var pairs []string
	for _, a := range buildArgs {
		v, ok := values[a.Key]
		if !ok {
			v = a.Value
		}
		pairs = append(pairs, a.Key+"="+v)
	}
	if len(pairs) > 0 {
		pairs = append([]string{fmt.Sprintf("|%d", len(pairs))}, pairs...)
	}
	return strings.Join(append(pairs, args...), " ")
}

// envValues maps the keys of "K=V" entries to their values; a later entry
// wins, as in an environment.
func envValues(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
