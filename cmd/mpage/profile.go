package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile starts a CPU profile of the run into path (the hidden
// --cpuprofile flag); "" does nothing.
func (a *app) startProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	a.profile = f
	return nil
}

// stopProfile ends the CPU profile, if one is being written.
func (a *app) stopProfile() {
	if a.profile == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := a.profile.Close(); err != nil {
		fmt.Fprintf(a.stderr, "mpage: --cpuprofile: %v\n", err)
	}
	a.profile = nil
}
