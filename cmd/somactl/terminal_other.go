//go:build !linux

package main

import (
	"errors"
	"os"
)

// Echo can only be turned off on Linux for now; elsewhere the password is
// read from stdin as a line.
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File) (string, error) { return "", errors.New("no terminal support") }
