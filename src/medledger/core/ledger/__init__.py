"""The ledger's pure core: transactions, contracts, blocks and the state commitment inputs.

Path of a transaction: ``envelope`` (wire bytes <-> ``SignedTransaction``, signature) ->
``intake`` checks -> ordering -> ``runtime`` (each contract a deterministic state machine) ->
``block`` (header over tx results, state root, log root; proposer signature).
"""
