package sqlstore

import (
	"context"
	"database/sql"

	"github.com/soma-chat/soma/persistence"
)

// cross_signing_signatures: signatures uploaded for a user's devices and
// master key, by the user's own keys or by another user's user-signing
// key. The signed key's own JSON keeps the signatures it was uploaded
// with; these are the ones added later.

const upsertCrossSigningSignatureSQL = `
INSERT INTO cross_signing_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`

const selectCrossSigningSignaturesSQL = `
SELECT target_key_id, signer_user_id, signer_key_id, signature FROM cross_signing_signatures
WHERE target_user_id = $1 ORDER BY target_key_id, signer_user_id, signer_key_id`

type crossSigningSignaturesTable struct {
	upsert, selectTarget *sql.Stmt
}

func prepareCrossSigningSignaturesTable(p *preparer) *crossSigningSignaturesTable {
	return &crossSigningSignaturesTable{
		upsert:       p.prepare(upsertCrossSigningSignatureSQL),
		selectTarget: p.prepare(selectCrossSigningSignaturesSQL),
	}
}

func (t *crossSigningSignaturesTable) UpsertCrossSigningSignature(ctx context.Context, tx *sql.Tx, sig *persistence.CrossSigningSignature) error {
	_, err := txStmt(ctx, tx, t.upsert).ExecContext(ctx, sig.TargetUserID, sig.TargetKeyID, sig.SignerUserID, sig.SignerKeyID, sig.Signature)
	return err
}

func (t *crossSigningSignaturesTable) SelectCrossSigningSignatures(ctx context.Context, targetUserID string) ([]persistence.CrossSigningSignature, error) {
	rows, err := t.selectTarget.QueryContext(ctx, targetUserID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []persistence.CrossSigningSignature
	for rows.Next() {
		s := persistence.CrossSigningSignature{TargetUserID: targetUserID}
		if err := rows.Scan(&s.TargetKeyID, &s.SignerUserID, &s.SignerKeyID, &s.Signature); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
