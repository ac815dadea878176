package sqlstore

import "database/sql"

// Stats returns the connection pool's statistics, for metrics.
func (s *Store) Stats() sql.DBStats { return s.db.Stats() }
