"""The GraphQL documents the bot sends to the ERM: few and fixed, written once here.

Every value — an item id, the days, a description, the sign-in email and password, a search text, a
cursor — is a GraphQL variable (``$itemId``…), never pasted into the text: a device id typed by a
person cannot change what is asked. The constants that remain in the text (the list order) are
part of the question, not values. ``tests/test_erm_graphql_queries.py`` validates each document
against the sandbox's schema, written from documents 002/003.
"""

from __future__ import annotations

SIGN_IN_CLIENT = """
mutation SignInClient($email: String!, $password: String!) {
  signInClient(signInCredentialsInput: {email: $email, password: $password}) {
    accessToken
  }
}
"""
"""Document 003 ("Login API") and 002 ("Login Endpoint")."""

SIGN_IN_USER = """
mutation SignInUser($email: String!, $password: String!) {
  signInUser(signInCredentials: {email: $email, password: $password}) {
    accessToken
    roleName
  }
}
"""
"""Document 002 (the Python sign-in example and the days-code example)."""

SIGN_IN = {"signInClient": SIGN_IN_CLIENT, "signInUser": SIGN_IN_USER}

_CODE = """
    codeType
    codeHex
    codeDec
"""

GENERATE_DAYS_CODE = f"""
mutation GenerateDaysCode($itemId: ID!, $codeDays: Int!, $description: String!) {{
  generateDaysCode(generateDaysCodeInput: {{itemId: $itemId, codeDays: $codeDays, description: $description}}) {{{_CODE}  }}
}}
"""

GENERATE_FREE_CODE = f"""
mutation GenerateFreeCode($itemId: ID!, $description: String!) {{
  generateFreeCode(generateFreeCodeInput: {{itemId: $itemId, description: $description}}) {{{_CODE}  }}
}}
"""

GENERATE_RESET_CODE = f"""
mutation GenerateResetCode($itemId: ID!, $description: String!) {{
  generateResetCode(generateResetCodeInput: {{itemId: $itemId, description: $description}}) {{{_CODE}  }}
}}
"""

_ITEM = """
        _id
        oemID
        oemItemID
        sellerID
        sellerItemID
        description
        lifeCycle
        legacyItemId
"""

CLIENT_ITEMS = f"""
query GetAllClientItems($first: Int!, $after: String, $search: String) {{
  getAllClientItems(first: $first, after: $after, search: $search, queryorder: DESC, assetaccount: false) {{
    page {{
      edges {{
        cursor
        node {{{_ITEM}        }}
      }}
    }}
  }}
}}
"""
"""Document 002 ("Getting distributor Items", ``get_node_id``): walked forward by cursor (Relay's
``first``/``after``), in the documents' order (``DESC``), asking only the fields they show: a page
shorter than asked is the last (no ``pageInfo``, which they never ask for)."""

_HISTORY = """
query GetItemsForDownloadById($ids: [{id_type}!]!) {{
  getItemsForDownloadById(ids: $ids) {{
    item {{
      _id
      oemID
      oemItemID
    }}
    codeHistory {{
      _id
      codeType
      codeDays
      codeNumber
      codeHexString
      codeDecString
      createdAt
      updatedAt
    }}
  }}
}}
"""

CODE_HISTORY = _HISTORY.format(id_type="ID")
"""Document 002 ("Fetch Code History"), the ids as a variable; the code's two forms and its time are
asked too, as the REST history's ``CodeEvent`` nodes carry them (settlement needs them)."""
CODE_HISTORY_STRING_IDS = _HISTORY.format(id_type="String")
"""The same, for a schema whose ``ids`` are ``[String]``: the document passes them as string literals,
which fit either type, but a variable must name one (tried when the ERM refuses ``[ID!]!``)."""

HISTORIES = (CODE_HISTORY, CODE_HISTORY_STRING_IDS)
