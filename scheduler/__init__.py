"""Pure allocation of NQSWs to training sessions: no Flask, no database."""
