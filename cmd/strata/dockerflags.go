package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	units "github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/progress"
)

// dockerFlags are docker build's flags a CI script passes that strata
// takes as docker does (the sandbox's hosts, limits and /dev/shm, quiet
// output) or accepts as the no-ops they are here.
type dockerFlags struct {
	addHosts   []string
	ulimits    []string
	shmSize    string
	quiet      bool
	provenance string
	sbom       string
	attests    []string
	// attestReferrers is --attest-referrers; attest the parsed attestation flags.
	attestReferrers bool
	attest          attestOptions
	// contextCommit is a git context's commit, for provenance.
	contextCommit string
	load          bool
	legacyRm      bool

	// Parsed by checkFlags.
	extraHosts []executor.HostIP
	limits     []executor.Ulimit
	shmBytes   int64
}

func (o *buildOptions) addDockerFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.addHosts, "add-host", nil, "add a line to /etc/hosts of RUN steps: HOST:IP or HOST=IP; repeatable")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "resource limit of RUN steps, as docker's: NAME=SOFT[:HARD] (nofile, nproc, core, stack, ...); repeatable")
	f.StringVar(&o.shmSize, "shm-size", "", "size of /dev/shm in RUN steps (64m, 1g; default 64m)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID on stdout; no progress")
	f.StringVar(&o.provenance, "provenance", "", "SLSA provenance attestation: true (mode=min), mode=min|max, or false; mode=max shows every --build-arg value (proxy URLs too) to whoever pulls the image")
	f.StringVar(&o.sbom, "sbom", "", "SPDX SBOM attestation of the final image's packages: true or false")
	f.StringArrayVar(&o.attests, "attest", nil, "attestation: type=provenance[,mode=min|max] or type=sbom[,disabled=true]; repeatable")
	f.BoolVar(&o.attestReferrers, "attest-referrers", false, "also attach the attestations as OCI 1.1 referrers of each image (subject field), for registries' referrers API")
	f.BoolVar(&o.load, "load", false, "tag the image into strata's store (what -t already does; see strata images)")
	// The legacy builder's, which buildx accepts and ignores.
	f.BoolVar(&o.legacyRm, "rm", true, "ignored, as by buildx")
	f.BoolVar(&o.legacyRm, "force-rm", false, "ignored, as by buildx")
	_ = f.MarkHidden("rm")
	_ = f.MarkHidden("force-rm")
}

// checkFlags checks every flag value that needs neither the store nor the
// context, so a bad one fails before any work, with one line naming it.
func (o *buildOptions) checkFlags(cmd *cobra.Command) error {
	if err := o.checkForeignFlags(cmd.Flags(), cmd.ErrOrStderr()); err != nil {
		return err
	}
	for _, t := range o.tags {
		if err := checkTag(t); err != nil {
			return fmt.Errorf("-t %q: %w", t, err)
		}
	}
	for _, kv := range o.buildArgs {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return fmt.Errorf("--build-arg %q: want KEY=VALUE, or KEY to take it from the environment", kv)
		}
	}
	if _, err := keyValues("--label", o.labels); err != nil {
		return err
	}
	if err := o.parsePlatforms(); err != nil {
		return err
	}
	if err := o.checkAttestations(); err != nil {
		return err
	}
	if err := o.parseHosts(); err != nil {
		return err
	}
	if err := o.parseUlimits(); err != nil {
		return err
	}
	if o.shmSize != "" {
		n, err := units.RAMInBytes(o.shmSize)
		// 0 is docker's "the default".
		if err != nil || n < 0 {
			return fmt.Errorf("--shm-size %q: want a size in bytes, or with a unit: 64m, 1g", o.shmSize)
		}
		o.shmBytes = n
	}
	if err := o.checkOutputs(); err != nil {
		return err
	}
	if o.quiet {
		// As buildx: -q is the quiet progress, whatever --progress or
		// BUILDKIT_PROGRESS say.
		return cmd.Flags().Set("progress", "quiet")
	}
	return nil
}

// checkTag applies docker's rules for a -t name: a lower-case repository
// and, when given, a tag of [A-Za-z0-9_.-] not starting with . or -.
func checkTag(t string) error {
	ref, err := name.NewTag(t)
	if err != nil {
		repo := t
		if i := strings.LastIndexByte(t, ':'); i > strings.LastIndexByte(t, '/') {
			repo = t[:i]
		}
		if strings.ToLower(repo) != repo {
			return errors.New("repository name must be lowercase")
		}
		if strings.Contains(t, "@") {
			return errors.New("a tag cannot hold a digest")
		}
		return err
	}
	if tag := ref.TagStr(); tag != "" && (tag[0] == '.' || tag[0] == '-') {
		return fmt.Errorf("tag %q must start with a letter, a digit or _", tag)
	}
	return nil
}

// attestOptions are the attestations asked for with --provenance,
// --sbom and --attest, as buildx spells them.
type attestOptions struct {
	provenance string // "", "min" or "max"
	version    string // SLSA: "" (v1) or "v0.2"
	builderID  string // provenance builder-id=, the CI run's URL
	// reproducible is provenance reproducible=true: the user's claim,
	// which BuildKit records as is (SOURCE_DATE_EPOCH alone is not one).
	reproducible bool
	sbom         bool
	referrers    bool // --attest-referrers: also as OCI 1.1 referrers
}

func (a attestOptions) any() bool { return a.provenance != "" || a.sbom }

// checkAttestations parses --provenance, --sbom and --attest as buildx
// does: true, false, or comma-separated key=value (mode=min|max,
// disabled=true). What strata cannot do (an SBOM generator image, SLSA
// v1) is refused with the reason. Of each type the first given counts,
// --attest before the shorthands, disabled or not: buildx lists them so
// and keeps the first (Attests.ToMap).
func (o *buildOptions) checkAttestations() error {
	o.attest = attestOptions{}
	specs := []struct{ flag, typ, v string }{}
	for _, a := range o.attests {
		typ := ""
		var rest []string
		for _, f := range strings.Split(a, ",") {
			if k, v, _ := strings.Cut(f, "="); k == "type" {
				typ = v
			} else {
				rest = append(rest, f)
			}
		}
		if typ != "provenance" && typ != "sbom" {
			return fmt.Errorf("--attest %q: want type=provenance or type=sbom", a)
		}
		v := strings.Join(rest, ",")
		if v == "" {
			v = "true"
		}
		specs = append(specs, struct{ flag, typ, v string }{"--attest " + strconv.Quote(a), typ, v})
	}
	if o.provenance != "" {
		specs = append(specs, struct{ flag, typ, v string }{"--provenance", "provenance", o.provenance})
	}
	if o.sbom != "" {
		specs = append(specs, struct{ flag, typ, v string }{"--sbom", "sbom", o.sbom})
	}
	seen := map[string]bool{}
	for _, sp := range specs {
		on, p, err := attestValue(sp.typ, sp.v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", sp.flag, sp.v, err)
		}
		if seen[sp.typ] {
			continue
		}
		seen[sp.typ] = true
		switch {
		case sp.typ == "sbom":
			o.attest.sbom = on
		case !on:
			o.attest.provenance = ""
		default:
			o.attest.provenance, o.attest.version, o.attest.builderID, o.attest.reproducible = p.mode, p.version, p.builderID, p.reproducible
		}
	}
	o.attest.referrers = o.attestReferrers
	if o.attest.referrers && !o.attest.any() {
		return fmt.Errorf("--attest-referrers: no attestation asked for: add --provenance=mode=min|max or --sbom=true")
	}
	if o.attest.referrers && !o.push && !o.hasOutput("registry") {
		// Referrers live in a registry; archives and layouts carry the attestation manifests.
		return fmt.Errorf("--attest-referrers: referrers are pushed to a registry, and no output is one: add --push or -o type=registry")
	}
	return nil
}

// provenanceParams are a provenance attestation's settings.
type provenanceParams struct {
	mode, version, builderID string
	reproducible             bool
}

// attestValue reads one attestation flag's value: on or off, and the
// provenance's settings (mode min unless mode=max).
func attestValue(typ, v string) (on bool, p provenanceParams, err error) {
	p.mode = "min"
	if b, err := strconv.ParseBool(v); err == nil {
		return b, p, nil
	}
	on = true
	for _, f := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(f, "=")
		switch {
		case k == "disabled":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return false, p, fmt.Errorf("disabled=%q: want true or false", val)
			}
			on = !b
		case k == "mode" && typ == "provenance":
			if val != "min" && val != "max" {
				return false, p, fmt.Errorf("mode=%q: want min or max", val)
			}
			p.mode = val
		case k == "version" && typ == "provenance":
			if val != "v1" && val != "v0.2" {
				return false, p, fmt.Errorf("version=%q: want v1 (the default, as BuildKit's) or v0.2", val)
			}
			p.version = val
		case k == "builder-id" && typ == "provenance":
			// docker/build-push-action passes the CI run's URL: builder.id.
			p.builderID = val
		case k == "reproducible" && typ == "provenance":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return false, p, fmt.Errorf("reproducible=%q: want true or false", val)
			}
			p.reproducible = b
		case k == "generator" && typ == "sbom":
			return false, p, fmt.Errorf("generator=%s: strata cannot run scanner images; it writes its own SPDX SBOM (dpkg, apk, Go binaries): drop generator=", val)
		case k == "scan-context" || k == "scan-stage":
			return false, p, fmt.Errorf("%s: not supported: the SBOM covers the final image only", k)
		default:
			return false, p, fmt.Errorf("unknown key %q: want mode=min|max, version=v1|v0.2, builder-id=, reproducible= or disabled=true", k)
		}
	}
	return on, p, nil
}

// parseHosts reads --add-host as buildx does: HOST=IP or HOST:IP (the
// first '=', else the first ':', so HOST:::1 is IPv6), an IP in brackets
// unwrapped.
func (o *buildOptions) parseHosts() error {
	for _, h := range o.addHosts {
		host, ip, ok := strings.Cut(h, "=")
		if !ok {
			host, ip, ok = strings.Cut(h, ":")
		}
		if !ok || host == "" || ip == "" {
			return fmt.Errorf("--add-host %q: want HOST:IP or HOST=IP", h)
		}
		if ip == "host-gateway" {
			// slirp4netns runs with --disable-host-loopback: no address
			// of the step's network reaches the host's services.
			return fmt.Errorf("--add-host %q: host-gateway is not supported: RUN steps cannot reach the host's own services; give an IP address", h)
		}
		if len(ip) > 2 && ip[0] == '[' && ip[len(ip)-1] == ']' {
			ip = ip[1 : len(ip)-1]
		}
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("--add-host %q: %q is not an IP address", h, ip)
		}
		// Any space or control character would split the line or end the
		// name in /etc/hosts (resolvers take \v and \f as spaces too).
		if strings.ContainsFunc(host, func(r rune) bool { return r == '#' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return fmt.Errorf("--add-host %q: %q is not a host name", h, host)
		}
		o.extraHosts = append(o.extraHosts, executor.HostIP{Host: host, IP: ip})
	}
	return nil
}

// parseUlimits reads --ulimit with docker's parser (go-units); a name
// given twice keeps the last, as docker's map does, and the limits are in
// name order, so the step's key does not depend on the flags' order.
func (o *buildOptions) parseUlimits() error {
	byName := map[string]executor.Ulimit{}
	for _, v := range o.ulimits {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return fmt.Errorf("--ulimit %q: %w", v, err)
		}
		l := executor.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard}
		if err := executor.CheckUlimit(l); err != nil {
			return fmt.Errorf("--ulimit %q: %w", v, err)
		}
		byName[u.Name] = l
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o.limits = append(o.limits, byName[n])
	}
	return nil
}

// outputTypes are builder.Export's, with whether dest names a directory.
var outputTypes = map[string]bool{"oci": false, "oci-layout": true, "docker": false, "registry": false, "local": true, "tar": false}

// checkOutputs refuses an --output that would fail only after the build:
// an unknown type, a missing dest, a dest strata cannot write, a bad name.
func (o *buildOptions) checkOutputs() error {
	outs, err := o.parseOutputs()
	if err != nil {
		return err
	}
	for i, out := range outs {
		spec := "--push"
		if i < len(o.outputs) {
			spec = fmt.Sprintf("--output %q", o.outputs[i])
		}
		isDir, known := outputTypes[out.Type]
		if out.Type == "docker" && len(o.platforms) > 1 {
			return fmt.Errorf("%s: a docker archive holds one platform (docker load takes one image per name), and --platform names %d: build one platform for it, or use type=oci or type=registry", spec, len(o.platforms))
		}
		switch {
		case !known:
			return fmt.Errorf("%s: unknown type %q: want oci, oci-layout, docker, registry, local or tar", spec, out.Type)
		case out.Type == "registry":
			for _, n := range out.Names {
				if err := checkTag(n); err != nil {
					return fmt.Errorf("%s: name %q: %w", spec, n, err)
				}
			}
			continue
		case out.Dest == "":
			return fmt.Errorf("%s: type=%s needs dest=", spec, out.Type)
		case out.Dest == "-":
			if isDir {
				return fmt.Errorf("%s: type=%s writes a directory, not standard output", spec, out.Type)
			}
			continue
		}
		if err := checkWritable(out.Dest, isDir); err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
	}
	return nil
}

// checkWritable says why dest cannot be written: a file output over a
// directory or in a directory that does not exist (archives are written
// beside their name, then renamed), or, for a directory output (created
// with its parents), a closest existing ancestor that is no writable
// directory.
func checkWritable(dest string, isDir bool) error {
	dir := filepath.Clean(dest)
	if !isDir {
		if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
			return fmt.Errorf("dest %s is a directory", dest)
		}
		dir = filepath.Dir(dir)
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("dest %s: %w", dest, err)
		}
	}
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("dest %s: %s is not a directory", dest, dir)
			}
			if err := unix.Access(dir, unix.W_OK); err != nil {
				return fmt.Errorf("dest %s: directory %s is not writable: %w", dest, dir, err)
			}
			return nil
		}
		// ENOTDIR: a file on the way, which the next round names.
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) || filepath.Dir(dir) == dir {
			return fmt.Errorf("dest %s: %w", dest, err)
		}
		dir = filepath.Dir(dir)
	}
}

// unusedBuildArgs replaces the parser's per-arg warnings by docker's one
// line, counting only the ARGs of the stages the target needs (and the
// global ones): an ARG in a stage --target skips consumes nothing.
func unusedBuildArgs(g *dockerfile.Graph, sink progress.Sink, buildArgs map[string]string) {
	declared := map[string]bool{"SOURCE_DATE_EPOCH": true}
	for _, a := range g.GlobalArgs {
		declared[a.Key] = true
	}
	for _, s := range g.Stages {
		for _, st := range s.Steps {
			if c, ok := st.Command.(*instructions.ArgCommand); ok {
				for _, a := range c.Args {
					declared[a.Key] = true
				}
			}
		}
	}
	var unused []string
	for k := range buildArgs {
		// The proxy args are predefined: RUN sees them undeclared.
		if !declared[k] && !slices.Contains([]string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}, strings.ToUpper(k)) {
			unused = append(unused, k)
		}
	}
	g.Warnings = slices.DeleteFunc(g.Warnings, func(w dockerfile.Warning) bool { return w.Rule == "UnusedBuildArg" })
	if len(unused) == 0 {
		return
	}
	sort.Strings(unused)
	sink.Event(progress.Warning{Message: fmt.Sprintf("One or more build-args [%s] were not consumed", strings.Join(unused, " "))})
}
