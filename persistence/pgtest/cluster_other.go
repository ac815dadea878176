//go:build !linux

package pgtest

import "errors"

func startCluster() (string, func(), error) {
	return "", nil, errors.New("throwaway clusters are only made on Linux")
}
