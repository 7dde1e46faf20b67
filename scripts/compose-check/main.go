// compose-check loads the repository's docker-compose.yml with compose-go, the loader Docker
// Compose itself uses (the Compose schema, so unknown keys fail; interpolation with `${X:?}`;
// depends_on conditions; references between services), as `docker compose config` would, and
// checks what the README promises of it. There is no Docker engine on the CI machine, so this
// is how the file is proven to load. scripts/test runs it; prints `N passed, N failed`.
//
// Usage: compose-check [-print] REPO
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// What a filled-in .env holds (test values, never real ones).
const testEnv = `POSTGRES_PASSWORD=composecheckpassword
JWT_SECRET=compose-check-secret-compose-check-secret-0123
WEBHOOK_ENCRYPTION_KEY=Y29tcG9zZS1jaGVjay1rZXktY29tcG9zZS1jaGVjay0=
`

// load reads dir/docker-compose.yml the way `docker compose --env-file envFile config` does,
// without the calling process's environment (so the result does not depend on the shell).
func load(dir, envFile string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
	)
	if err != nil {
		return nil, err
	}
	return cli.ProjectFromOptions(context.Background(), opts)
}

// variant writes the repository's docker-compose.yml, edited by replace (old, new pairs),
// into a fresh directory and returns it.
func variant(repo string, replace ...string) (string, error) {
	src, err := os.ReadFile(filepath.Join(repo, "docker-compose.yml"))
	if err != nil {
		return "", err
	}
	text := string(src)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(text, replace[i]) {
			return "", fmt.Errorf("docker-compose.yml has no %q to edit", replace[i])
		}
		text = strings.Replace(text, replace[i], replace[i+1], 1)
	}
	dir, err := os.MkdirTemp("", "compose-check-")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(text), 0o644)
}

func writeEnv(contents string) (string, error) {
	f, err := os.CreateTemp("", "compose-check-*.env")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(contents)
	return f.Name(), err
}

// refused loads an edited copy and expects an error containing want.
func refused(repo, envFile, want string, replace ...string) error {
	dir, err := variant(repo, replace...)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, err = load(dir, envFile)
	if err == nil {
		return fmt.Errorf("loaded, but should have been refused")
	}
	if !strings.Contains(err.Error(), want) {
		return fmt.Errorf("refused with %q, which does not say %q", err, want)
	}
	return nil
}

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func dependsOn(s types.ServiceConfig, on, condition string) error {
	d, ok := s.DependsOn[on]
	if !ok {
		return fmt.Errorf("%s does not depend on %s", s.Name, on)
	}
	return expect(d.Condition == condition, "%s depends on %s with %q, not %q", s.Name, on, d.Condition, condition)
}

// checkProject is what the README says of the stack.
func checkProject(p *types.Project) error {
	names := p.ServiceNames()
	slices.Sort(names)
	want := []string{"api", "frontend", "migrate", "postgres", "redis", "worker"}
	if !slices.Equal(names, want) {
		return fmt.Errorf("services %v, want %v", names, want)
	}
	api, _ := p.GetService("api")
	worker, _ := p.GetService("worker")
	migrate, _ := p.GetService("migrate")
	frontend, _ := p.GetService("frontend")
	checks := []error{
		dependsOn(frontend, "api", types.ServiceConditionHealthy),
		expect(frontend.Build != nil && frontend.Build.Target == "frontend", "frontend is not built from the frontend target"),
		expect(frontend.Build != nil && frontend.Build.Args["VITE_API_URL"] != nil &&
			*frontend.Build.Args["VITE_API_URL"] == "http://localhost:8001",
			"frontend's VITE_API_URL is not the API's published URL"),
		expect(len(frontend.Ports) == 1 && frontend.Ports[0].Target == 5173 && frontend.Ports[0].Published == "5173",
			"frontend publishes %v, not 5173", frontend.Ports),
		dependsOn(api, "migrate", types.ServiceConditionCompletedSuccessfully),
		dependsOn(api, "postgres", types.ServiceConditionHealthy),
		dependsOn(api, "redis", types.ServiceConditionHealthy),
		dependsOn(worker, "migrate", types.ServiceConditionCompletedSuccessfully),
		dependsOn(worker, "postgres", types.ServiceConditionHealthy),
		dependsOn(migrate, "postgres", types.ServiceConditionHealthy),
		expect(slices.Equal(migrate.Command, types.ShellCommand{"migrate"}), "migrate runs %v", migrate.Command),
		expect(api.Build != nil && api.Build.Target == "host", "api is not built from the Dockerfile's host target"),
		expect(worker.Build != nil && worker.Build.Target == "worker", "worker is not built from the worker target"),
		expect(len(api.Ports) == 1 && api.Ports[0].Target == 8001 && api.Ports[0].Published == "8001",
			"api publishes %v, not 8001", api.Ports),
	}
	for _, name := range []string{"postgres", "redis", "api", "worker", "frontend"} {
		s, _ := p.GetService(name)
		checks = append(checks, expect(s.HealthCheck != nil && len(s.HealthCheck.Test) > 0,
			"%s has no healthcheck", name))
	}
	for _, s := range []types.ServiceConfig{api, worker, migrate} {
		for _, k := range []string{"DATABASE_URL", "REDIS_URL", "JWT_SECRET", "WEBHOOK_ENCRYPTION_KEY"} {
			v := s.Environment[k]
			checks = append(checks, expect(v != nil && *v != "", "%s has no %s", s.Name, k))
		}
		url := s.Environment["DATABASE_URL"]
		checks = append(checks, expect(url != nil && strings.Contains(*url, "composecheckpassword@postgres:5432"),
			"%s's DATABASE_URL does not carry .env's password", s.Name))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

func main() {
	print := flag.Bool("print", false, "print the loaded project, as `docker compose config` does")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-print] REPO")
		os.Exit(2)
	}
	repo := flag.Arg(0)
	full, err := writeEnv(testEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.Remove(full)

	tests := []struct {
		name string
		run  func() error
	}{
		{"loads with a filled-in .env: services, depends_on conditions, healthchecks, environment", func() error {
			p, err := load(repo, full)
			if err != nil {
				return err
			}
			if *print {
				out, err := p.MarshalYAML()
				if err != nil {
					return err
				}
				fmt.Println(string(out))
			}
			return checkProject(p)
		}},
		{".env.example as checked in (secrets empty) is refused, naming the setting", func() error {
			_, err := load(repo, filepath.Join(repo, ".env.example"))
			if err == nil {
				return fmt.Errorf("loaded with empty secrets")
			}
			return expect(strings.Contains(err.Error(), "in .env (see .env.example)"), "refused with %q", err)
		}},
		{"each secret missing alone is refused, naming it", func() error {
			for _, name := range []string{"POSTGRES_PASSWORD", "JWT_SECRET", "WEBHOOK_ENCRYPTION_KEY"} {
				var kept []string
				for _, line := range strings.Split(strings.TrimSpace(testEnv), "\n") {
					if !strings.HasPrefix(line, name+"=") {
						kept = append(kept, line)
					}
				}
				env, err := writeEnv(strings.Join(kept, "\n") + "\n")
				if err != nil {
					return err
				}
				_, err = load(repo, env)
				os.Remove(env)
				if err == nil || !strings.Contains(err.Error(), "set "+name+" in .env") {
					return fmt.Errorf("without %s: %v", name, err)
				}
			}
			return nil
		}},
		{"an unknown key is refused by the Compose schema", func() error {
			return refused(repo, full, "helthcheck", "    healthcheck:\n      # GET /ready", "    helthcheck:\n      # GET /ready")
		}},
		{"an unknown depends_on condition is refused", func() error {
			return refused(repo, full, "condition value must be one of",
				"migrate: {condition: service_completed_successfully}", "migrate: {condition: service_finished}")
		}},
		{"depending on a service that does not exist is refused", func() error {
			return refused(repo, full, "postgress", "postgres: {condition: service_healthy}\n    restart: \"no\"",
				"postgress: {condition: service_healthy}\n    restart: \"no\"")
		}},
	}
	passed, failed := 0, 0
	for _, t := range tests {
		if err := t.run(); err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", t.name, err)
		} else {
			passed++
			fmt.Printf("ok   %s\n", t.name)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
