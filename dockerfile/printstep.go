package dockerfile

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// formatStep renders one step: the instruction name, then its fields.
func (s *Stage) formatStep(st Step) string {
	var f fields
	if st.OnBuild {
		f.add("(onbuild trigger)")
	}
	f.add(strings.ToUpper(st.Command.Name()))
	switch c := st.Command.(type) {
	case *instructions.RunCommand:
		s.formatRun(&f, st, c)
	case *instructions.CopyCommand:
		if c.From != "" {
			f.addf("from=%s", s.describeSource(st.From))
		}
		formatSelection(&f, c.Parents, c.ExcludePatterns, nil)
		formatCopy(&f, st, copyFlags{chmod: c.Chmod, chown: c.Chown, link: c.Link}, c.SourcesAndDest)
	case *instructions.AddCommand:
		if c.Checksum != "" {
			f.addf("checksum=%q", c.Checksum)
		}
		if c.KeepGitDir != nil {
			f.addf("keep-git-dir=%t", *c.KeepGitDir)
		}
		formatSelection(&f, false, c.ExcludePatterns, c.Unpack)
		formatCopy(&f, st, copyFlags{chmod: c.Chmod, chown: c.Chown, link: c.Link}, c.SourcesAndDest)
	case *instructions.ExposeCommand:
		f.addf("%q", st.Ports)
	default:
		formatMeta(&f, st.Command)
	}
	return f.String()
}

func (s *Stage) formatRun(f *fields, st Step, c *instructions.RunCommand) {
	if n := instructions.GetNetwork(c); n != instructions.NetworkDefault {
		f.addf("network=%s", n)
	}
	for _, m := range st.Mounts {
		f.add(s.formatMount(m))
	}
	for _, flag := range st.deferredFlags {
		f.addf("as-written(%q)", flag)
	}
	formatCmdLine(f, c.ShellDependantCmdLine)
}

func (s *Stage) formatMount(m Mount) string {
	var f fields
	f.addf("type=%s", m.Type)
	if m.Type == instructions.MountTypeBind || m.From.Kind != SourceScratch {
		f.addf("from=%q", s.describeSource(m.From))
	}
	if m.Source != "" {
		f.addf("source=%q", m.Source)
	}
	f.addf("target=%q", m.Target)
	if m.ReadOnly {
		f.add("ro")
	}
	if m.CacheID != "" {
		f.addf("id=%q", m.CacheID)
	}
	if m.CacheSharing != "" {
		f.addf("sharing=%s", m.CacheSharing)
	}
	if m.SizeLimit != 0 {
		f.addf("size=%d", m.SizeLimit)
	}
	if m.Env != nil {
		f.addf("env=%q", *m.Env)
	}
	if m.Required {
		f.add("required")
	}
	if m.Mode != nil {
		f.addf("mode=%#o", *m.Mode)
	}
	if m.UID != nil {
		f.addf("uid=%d", *m.UID)
	}
	if m.GID != nil {
		f.addf("gid=%d", *m.GID)
	}
	return "mount(" + f.String() + ")"
}

func formatCmdLine(f *fields, c instructions.ShellDependantCmdLine) {
	if c.PrependShell {
		f.addf("shell=%q", c.CmdLine)
	} else {
		f.addf("exec=%q", c.CmdLine)
	}
	for _, h := range c.Files {
		f.addf("heredoc(%s chomp=%t)=%q", h.Name, h.Chomp, h.Data)
	}
}

// formatSelection renders the flags that choose what COPY and ADD write:
// --parents, --exclude (in order: a later "!" pattern re-includes) and
// ADD's --unpack (only when given: unset and false differ for a download).
func formatSelection(f *fields, parents bool, exclude []string, unpack *bool) {
	if parents {
		f.add("parents")
	}
	if len(exclude) > 0 {
		f.addf("exclude=%q", exclude)
	}
	if unpack != nil {
		f.addf("unpack=%t", *unpack)
	}
}

// formatCopy renders COPY and ADD. A --chmod the preview could not parse,
// because the base image's ENV decides it, is shown as written.
func formatCopy(f *fields, st Step, flags copyFlags, sd instructions.SourcesAndDest) {
	if flags.chown != "" {
		f.addf("chown=%q", flags.chown)
	}
	if st.Mode != nil {
		f.addf("chmod=%04o", octalMode(*st.Mode))
	} else if flags.chmod != "" {
		f.addf("chmod=%q", flags.chmod)
	}
	if flags.link {
		f.add("link")
	}
	if len(sd.SourcePaths) > 0 {
		f.addf("src=%q", sd.SourcePaths)
	}
	for _, sc := range sd.SourceContents {
		f.addf("heredoc(%s expand=%t)=%q", sc.Path, sc.Expand, sc.Data)
	}
	f.addf("dest=%q", sd.DestPath)
}

// formatMeta renders the instructions that only change the image config
// or the build state.
func formatMeta(f *fields, cmd instructions.Command) {
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			f.add(quoteArg(Arg{Key: kv.Key, Value: kv.ValueString(), HasValue: kv.Value != nil}))
		}
	case *instructions.EnvCommand:
		formatKVs(f, c.Env)
	case *instructions.LabelCommand:
		formatKVs(f, c.Labels)
	case *instructions.WorkdirCommand:
		f.addf("%q", c.Path)
	case *instructions.UserCommand:
		f.addf("%q", c.User)
	case *instructions.StopSignalCommand:
		f.addf("%q", c.Signal)
	case *instructions.MaintainerCommand:
		f.addf("%q", c.Maintainer)
	case *instructions.OnbuildCommand:
		f.addf("%q", c.Expression)
	case *instructions.VolumeCommand:
		f.addf("%q", c.Volumes)
	case *instructions.ShellCommand:
		f.addf("%q", c.Shell)
	case *instructions.CmdCommand:
		formatCmdLine(f, c.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		formatCmdLine(f, c.ShellDependantCmdLine)
	case *instructions.HealthCheckCommand:
		formatHealth(f, c)
	}
}

func formatKVs(f *fields, kvs instructions.KeyValuePairs) {
	for _, kv := range kvs {
		f.addf("%s=%q", quoteKey(kv.Key), kv.Value)
	}
}

func formatHealth(f *fields, c *instructions.HealthCheckCommand) {
	h := c.Health
	f.addf("test=%q", h.Test)
	if h.Interval != 0 {
		f.addf("interval=%s", h.Interval)
	}
	if h.Timeout != 0 {
		f.addf("timeout=%s", h.Timeout)
	}
	if h.StartPeriod != 0 {
		f.addf("start-period=%s", h.StartPeriod)
	}
	if h.StartInterval != 0 {
		f.addf("start-interval=%s", h.StartInterval)
	}
	if h.Retries != 0 {
		f.addf("retries=%d", h.Retries)
	}
}

// quoteKey quotes a key only when it would be ambiguous bare.
func quoteKey(k string) string {
	if k == "" || strings.ContainsAny(k, " \t\n\"'=\\") {
		return fmt.Sprintf("%q", k)
	}
	return k
}

// fields joins rendered fields with spaces.
type fields []string

func (f *fields) add(s string)                 { *f = append(*f, s) }
func (f *fields) addf(format string, a ...any) { f.add(fmt.Sprintf(format, a...)) }
func (f fields) String() string                { return strings.Join(f, " ") }
