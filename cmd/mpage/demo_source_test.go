package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDemoSourceLeavesOutIgnoredFolders checks that the demo copies the
// module's source but not the folders its .gitignore names as anchored
// directories (benchmark results, build output) nor hidden ones.
func TestDemoSourceLeavesOutIgnoredFolders(t *testing.T) {
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":          "module example.com/x\n",
		".gitignore":      "/out/\n*.test\n",
		"main.go":         "package main\n",
		"sub/a.go":        "package sub\n",
		"out/big.bin":     "results, not source\n",
		".git/HEAD":       "ref: refs/heads/main\n",
		"sub/out/kept.go": "package out\n", // only the top-level out/ is anchored
	}
	for name, data := range files {
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(mod)
	dir, from, err := demoSource(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if from != mod {
		t.Fatalf("demo source from %q, want the module root %q", from, mod)
	}
	copied := map[string]bool{"go.mod": true, "main.go": true, "sub/a.go": true, "sub/out/kept.go": true}
	for name := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if got, want := err == nil, copied[name]; got != want {
			t.Errorf("%s copied = %v, want %v", name, got, want)
		}
	}
}
