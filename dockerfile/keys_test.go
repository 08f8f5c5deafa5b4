package dockerfile

import (
	"slices"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// runState expands the target on a base with env (nil: scratch) and
// returns its last step, a RUN: the environment it runs with and the build
// args of its history entry and cache key.
func runState(t *testing.T, g *Graph, env []string) Step {
	t.Helper()
	x, err := g.Target.Expand(ImageState(env, nil))
	if err != nil {
		t.Fatal(err)
	}
	st := x.Steps[len(x.Steps)-1]
	if _, ok := st.Command.(*instructions.RunCommand); !ok {
		t.Fatalf("last step is %T, want a RUN", st.Command)
	}
	return st
}

const pathEnv = "PATH=" + DefaultPathEnv

// TestArgKeysNotExpanded checks that an ARG's name is taken as written:
// BuildKit v0.34.2 has ArgCommand.Expand (instructions/commands.go), which
// would expand the key, but dockerfile2llb never calls it: dispatch skips
// the Expand step for ARG (`!isArg`), dispatchArg expands only the default
// and looks up --build-arg and the global value by the key as written, and
// buildMetaArgs does the same before the first FROM. So `ARG ${name}=v`
// declares an arg literally named "${name}", which RUN sees as such. The
// expectations are what BuildKit's Dockerfile2LLB gives (the RUN exec op's
// env and its history's `|N K=V`).
func TestArgKeysNotExpanded(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		buildArgs map[string]string
		baseEnv   []string
		wantEnv   []string
		wantArgs  []Arg
		// wantGlobal is a global arg that must be in Graph.GlobalArgs.
		wantGlobal *Arg
		// unused is a build arg that must be reported as not consumed.
		unused string
	}{
		{
			name:       "global ARG: the key is literal, the stage redeclares it",
			src:        "ARG name=FOO\nARG ${name}=value\nFROM scratch\nARG ${name}\nARG FOO\nRUN true\n",
			wantEnv:    []string{pathEnv, "${name}=value"},
			wantArgs:   []Arg{{"${name}", "value", true}, {Key: "FOO"}},
			wantGlobal: &Arg{"${name}", "value", true},
		},
		{
			name:      "global ARG: a build arg named like the expanded key sets only that key",
			src:       "ARG name=FOO\nARG ${name}=value\nFROM scratch\nARG ${name}\nARG FOO\nRUN true\n",
			buildArgs: map[string]string{"FOO": "cli"},
			wantEnv:   []string{pathEnv, "${name}=value", "FOO=cli"},
			wantArgs:  []Arg{{"${name}", "value", true}, {"FOO", "cli", true}},
		},
		{
			name:       "global ARG: a build arg overrides by the literal key",
			src:        "ARG name=FOO\nARG ${name}=value\nFROM scratch\nARG ${name}\nARG FOO\nRUN true\n",
			buildArgs:  map[string]string{"${name}": "cli"},
			wantEnv:    []string{pathEnv, "${name}=cli"},
			wantArgs:   []Arg{{"${name}", "cli", true}, {Key: "FOO"}},
			wantGlobal: &Arg{"${name}", "cli", true},
		},
		{
			name:     "stage ARG with a default: the key is literal",
			src:      "FROM scratch\nARG name=FOO\nARG ${name}=value\nRUN true\n",
			wantEnv:  []string{pathEnv, "name=FOO", "${name}=value"},
			wantArgs: []Arg{{"name", "FOO", true}, {"${name}", "value", true}},
		},
		{
			// BuildKit: RUN |2 name=FOO ${name}= ..., and FOO=cli unused.
			name:      "stage ARG without a value ignores a build arg named like the expanded key",
			src:       "FROM scratch\nARG name=FOO\nARG ${name}\nRUN true\n",
			buildArgs: map[string]string{"FOO": "cli"},
			wantEnv:   []string{pathEnv, "name=FOO"},
			wantArgs:  []Arg{{"name", "FOO", true}, {Key: "${name}"}},
			unused:    "FOO",
		},
		{
			name:      "stage ARG without a value takes a build arg of the literal key",
			src:       "FROM scratch\nARG name=FOO\nARG ${name}\nRUN true\n",
			buildArgs: map[string]string{"${name}": "cli"},
			wantEnv:   []string{pathEnv, "name=FOO", "${name}=cli"},
			wantArgs:  []Arg{{"name", "FOO", true}, {"${name}", "cli", true}},
		},
		{
			name:     "a variable the base image defines is not expanded either",
			src:      "FROM alpine\nARG ${PATH}=x\nRUN true\n",
			baseEnv:  []string{"PATH=/img/bin"},
			wantEnv:  []string{"PATH=/img/bin", "${PATH}=x"},
			wantArgs: []Arg{{"${PATH}", "x", true}},
		},
		{
			name:       "a global ARG named after a variable keeps its name in the stage",
			src:        "ARG ${PATH}=x\nFROM alpine\nARG ${PATH}\nRUN true\n",
			baseEnv:    []string{"PATH=/img/bin"},
			wantEnv:    []string{"PATH=/img/bin", "${PATH}=x"},
			wantArgs:   []Arg{{"${PATH}", "x", true}},
			wantGlobal: &Arg{"${PATH}", "x", true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, tt.src, tt.buildArgs)
			st := runState(t, g, tt.baseEnv)
			if !slices.Equal(st.Env, tt.wantEnv) {
				t.Errorf("RUN env %q, want %q", st.Env, tt.wantEnv)
			}
			if !slices.Equal(st.Args, tt.wantArgs) {
				t.Errorf("RUN args %v, want %v", st.Args, tt.wantArgs)
			}
			if tt.wantGlobal != nil && !slices.Contains(g.GlobalArgs, *tt.wantGlobal) {
				t.Errorf("global args %v, want them to hold %v", g.GlobalArgs, *tt.wantGlobal)
			}
			wantWarning := Warning{Rule: "UnusedBuildArg", Message: "build-arg " + tt.unused + " was not consumed: no ARG declares it"}
			if got := slices.Contains(g.Warnings, wantWarning); got != (tt.unused != "") {
				t.Errorf("warnings %+v: has %+v %t, want %t", g.Warnings, wantWarning, got, tt.unused != "")
			}
		})
	}
}

// TestEnvLabelKeysExpanded checks that ENV and LABEL keys, unlike ARG's,
// are expanded like their values: BuildKit's EnvCommand.Expand and
// LabelCommand.Expand run expandKvpsInPlace on key and value
// (instructions/commands.go), and dispatch calls them with the stage's
// environment before dispatchEnv and dispatchLabel. A key that expands to
// nothing is kept, empty, as BuildKit does ("ENV =u"). The expectations
// are what BuildKit's Dockerfile2LLB gives.
func TestEnvLabelKeysExpanded(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		buildArgs map[string]string
		baseEnv   []string
		wantEnv   []string
		// wantLabel is the key and value of the LABEL before the RUN.
		wantLabel [2]string
	}{
		{
			name:      "key from a stage ARG",
			src:       "FROM scratch\nARG name=FOO\nENV ${name}=value\nLABEL ${name}=lv\nRUN true\n",
			wantEnv:   []string{pathEnv, "name=FOO", "FOO=value"},
			wantLabel: [2]string{"FOO", "lv"},
		},
		{
			name:      "key from a redeclared global ARG with a build arg",
			src:       "ARG name=FOO\nFROM scratch\nARG name\nENV ${name}=v\nLABEL ${name}=l\nRUN true\n",
			buildArgs: map[string]string{"name": "BAR"},
			wantEnv:   []string{pathEnv, "name=BAR", "BAR=v"},
			wantLabel: [2]string{"BAR", "l"},
		},
		{
			// A global ARG is not in scope until the stage redeclares it.
			name:      "key from a global ARG not redeclared is empty",
			src:       "ARG name=FOO\nFROM scratch\nENV ${name}=v\nLABEL ${name}=l\nRUN true\n",
			wantEnv:   []string{pathEnv, "=v"},
			wantLabel: [2]string{"", "l"},
		},
		{
			name:      "key from the base image's ENV",
			src:       "FROM alpine\nENV ${PATH}=p\nLABEL ${PATH}=l\nRUN true\n",
			baseEnv:   []string{"PATH=/img/bin"},
			wantEnv:   []string{"PATH=/img/bin", "/img/bin=p"},
			wantLabel: [2]string{"/img/bin", "l"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustParse(t, tt.src, tt.buildArgs)
			x, err := g.Target.Expand(ImageState(tt.baseEnv, nil))
			if err != nil {
				t.Fatal(err)
			}
			run := x.Steps[len(x.Steps)-1]
			if !slices.Equal(run.Env, tt.wantEnv) {
				t.Errorf("RUN env %q, want %q", run.Env, tt.wantEnv)
			}
			label, ok := x.Steps[len(x.Steps)-2].Command.(*instructions.LabelCommand)
			if !ok || len(label.Labels) != 1 {
				t.Fatalf("the step before RUN is %T, want a LABEL of one key", x.Steps[len(x.Steps)-2].Command)
			}
			if got := [2]string{label.Labels[0].Key, label.Labels[0].Value}; got != tt.wantLabel {
				t.Errorf("LABEL %q, want %q", got, tt.wantLabel)
			}
		})
	}
}
