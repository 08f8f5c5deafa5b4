package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/internal/sshforward"
)

// secretFlags are --secret and --ssh, spelled as docker build spells them.
type secretFlags struct {
	secrets []string
	ssh     []string
}

func (s *secretFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&s.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (id=ID alone: the variable ID, else the file ID); never stored in the image or the cache; repeatable")
	f.StringArrayVar(&s.ssh, "ssh", nil, "SSH agent for RUN --mount=type=ssh: default (the agent of $SSH_AUTH_SOCK), ID=SOCKET or ID=KEYFILE[,KEYFILE]; repeatable")
}

// apply reads every secret and checks every agent, before any work: a missing file or
// variable is one line naming the flag. The values go to the builder only.
func (s *secretFlags) apply(opts *builder.Options) error {
	for _, v := range s.secrets {
		id, value, err := readSecret(v)
		if err != nil {
			return err
		}
		if opts.Secrets == nil {
			opts.Secrets = map[string][]byte{}
		}
		opts.Secrets[id] = value
	}
	for _, v := range s.ssh {
		src, err := sshforward.Parse(v)
		if err != nil {
			return err
		}
		if opts.SSH == nil {
			opts.SSH = map[string]*sshforward.Source{}
		}
		if _, dup := opts.SSH[src.ID]; dup {
			return fmt.Errorf("--ssh %s: given twice", src.ID)
		}
		opts.SSH[src.ID] = src
	}
	return nil
}

// readSecret reads one --secret value as buildx does: type=file|env, id=, src= (or
// source=), env=. Without src= or env=, the variable named by the id if it is set, else
// the file named by the id. Errors name the id, never a value.
func readSecret(v string) (id string, value []byte, err error) {
	r := csv.NewReader(strings.NewReader(v))
	fields, err := r.Read()
	if err != nil {
		return "", nil, fmt.Errorf("--secret %q: %w", v, err)
	}
	var typ, src, env string
	for _, f := range fields {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return "", nil, fmt.Errorf("--secret %q: %q is not KEY=VALUE (want id=ID,src=FILE or id=ID,env=VAR)", v, f)
		}
		switch strings.ToLower(k) {
		case "type":
			if val != "file" && val != "env" {
				return "", nil, fmt.Errorf("--secret %q: type=%s: want file or env", v, val)
			}
			typ = val
		case "id":
			id = val
		case "src", "source":
			src = val
		case "env":
			env = val
		default:
			return "", nil, fmt.Errorf("--secret %q: unknown key %q (want type, id, src or env)", v, k)
		}
	}
	if id == "" {
		return "", nil, fmt.Errorf("--secret %q: no id= (want id=ID,src=FILE or id=ID,env=VAR)", v)
	}
	if src != "" && env != "" {
		return "", nil, fmt.Errorf("--secret id=%s: give src= or env=, not both", id)
	}
	switch {
	case typ == "env" && src != "":
		// buildx: with type=env, src= names the variable.
		env, src = src, ""
	case typ == "env" && env == "":
		env = id
	case typ == "file" && src == "":
		src = id
	case typ == "" && src == "" && env == "":
		if _, ok := os.LookupEnv(id); ok {
			env = id
		} else {
			src = id
		}
	}
	if env != "" {
		val, ok := os.LookupEnv(env)
		if !ok {
			return "", nil, fmt.Errorf("--secret id=%s: the variable %s is not set", id, env)
		}
		return id, []byte(val), nil
	}
	data, err := readAtMost(src, maxSecretSize)
	if err != nil {
		return "", nil, fmt.Errorf("--secret id=%s: reading %s: %w", id, src, unwrapPathError(err))
	}
	return id, data, nil
}

// maxSecretSize is BuildKit's bound on a secret (secrets.MaxSecretSize): a secret is a
// token or a key file, and src=/dev/zero must not fill memory.
const maxSecretSize = 500 << 10

func readAtMost(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d KiB, the most a secret may be", limit>>10)
	}
	return data, nil
}

// unwrapPathError drops the path an *os.PathError repeats.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
