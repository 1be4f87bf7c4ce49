"""The GraphQL examples of the vendor's document 002, run against the ERM sandbox over real HTTP,
verbatim but for the credentials (the sandbox's user) and the item ids (the sandbox's devices)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import ManualClock
from bot.erm import codes
from bot.standins.erm import ErmSandbox
from tests.test_sandbox_graphql import EMAIL, EXAMPLE_ID, PASSWORD, UNAUTHORIZED, data, gql, refusal


@pytest.fixture
async def client(erm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=erm_url) as http:
        yield http


DOC_SIGN_IN_CLIENT = """
    mutation {
      signInClient(signInCredentialsInput:{
        email:"test@example.com"
        password:"test1234"
      }){
        accessToken
      }
    }
"""
DOC_SIGN_IN_USER = """
    mutation {
      signInUser(signInCredentials:{
        email: "%s"
        password: "%s"
      }){
        _id
        accessToken
      }
    }
    """
DOC_ITEMS = """
query GetAllClientItems {
    getAllClientItems(queryorder: DESC, last: 100, assetaccount: false) {
        page {
            edges {
                cursor
                node {
                    _id
                    deleteStatus
                    deleteAt
                    createdAt
                    updatedAt
                    triggers
                    type
                    actionScope
                    actorName
                    profile
                    idType
                    idString
                    description
                    creationDate
                    oemID
                    oemItemID
                    sellerID
                    sellerItemID
                    lifeCycle
                    codeGenUsed
                    legacyItemId
                    code
                }
            }
        }
    }
}
"""
DOC_DAYS = """
mutation ($itemId: ID!, $codeDays: Int!) {
  generateDaysCode(generateDaysCodeInput: {
    itemId: $itemId
    codeDays: $codeDays
    description: "daycode"
  }) {
    codeType
    codeHex
    codeDec
  }
}
"""
DOC_SIGN_IN_AND_DAYS = """
    mutation SignInUser {
    signInUser(
        signInCredentials: { email: "test@example.com", password: "test1234" }
    ) {
        accessToken
        refreshToken
        _id
        deleteStatus
        deleteAt
        createdAt
        updatedAt
        email
        agentType
        agentId
        hireDate
        idString
        type
        name
        profile
        idType
        birthDate
        actionScope
        roleName
        subRoleName
        firstName
        lastName
    }
    generateDaysCode(
        generateDaysCodeInput: {
            itemId: "SBX00000000002"
            codeDays: 1
            description: "testing code generation"
        }
    ) {
        codeType
        codeHex
        codeDec
    }
}
"""
DOC_FREE = """
mutation GenerateFreeCode($itemId: ID!) {
  generateFreeCode(generateFreeCodeInput: {
    description: "free code generation"
    itemId: $itemId
  }) {
    codeDec
    codeHex
    codeType
  }
}
"""
DOC_FREE_INLINE = """
mutation GenerateFreeCode {
    generateFreeCode(
        generateFreeCodeInput: { itemId: "SBX00000000003", description: "test" }
    ) {
        codeType
        codeHex
        codeDec
    }
}
"""
DOC_RESET = """
mutation GenerateResetCode($itemId: ID!) {
    generateResetCode(generateResetCodeInput: {
      description: "reset code generation"
      itemId: $itemId
    }) {
      codeDec
      codeHex
      codeType
    }
}
"""
DOC_HISTORY_ANSWER = """
{
  getItemsForDownloadById(ids: ["64ba2e1eaa6c7f107d7a8918"]) {
    item {
      _id
      oemID
      oemItemID
    }
    codeHistory {
      _id
      deleteStatus
      deleteAt
      codeType
      codeDays
      codeNumber
    }
  }
}
"""
DOC_SEARCH = """
        query {
          getAllClientItems(
            search: "%s"
            first: 1
            queryorder: DESC
            assetaccount: false
          ) {
            page {
              edges {
                node {
                  _id
                  oemID
                  oemItemID
                  sellerItemID
                  description
                  actorName
                  createdAt
                  updatedAt
                }
              }
            }
          }
        }
    """


def doc_history_query(item_id: str) -> str:
    """``fetch_code_history``'s f-string, as the document writes it."""
    query = f"""
    query {{
        getItemsForDownloadById(ids: ["{item_id}"]) {{
            item {{
                _id
                oemID
                oemItemID
            }}
            codeHistory {{
                _id
                deleteStatus
                deleteAt
                codeType
                codeDays
                codeNumber
            }}
        }}
    }}
    """
    return query


async def test_the_documents_examples_run_against_the_sandbox(
    client: httpx.AsyncClient, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    token = data(await gql(client, DOC_SIGN_IN_CLIENT))["signInClient"]["accessToken"]
    user = data(await gql(client, DOC_SIGN_IN_USER % (EMAIL, PASSWORD)))["signInUser"]
    assert set(user) == {"_id", "accessToken"}

    edges = data(await gql(client, DOC_ITEMS, token))["getAllClientItems"]["page"]["edges"]
    assert len(edges) == 50 and [edge["cursor"] for edge in edges[:2]] == ["YXJyYXljb25uZWN0aW9uOjA=",
                                                                          "YXJyYXljb25uZWN0aW9uOjE="]
    newest = edges[0]["node"]
    assert newest["oemItemID"] == "SBX00000000048" and newest["triggers"] == [] and newest["deleteStatus"] is False
    assert (newest["type"], newest["oemID"], newest["sellerID"], newest["code"]) == ("DEVICE", "OVES", "OVES", None)
    assert newest["createdAt"] > edges[1]["node"]["createdAt"]  # newest first, as DESC says

    days = data(await gql(client, DOC_DAYS, token, itemId=EXAMPLE_ID, codeDays=4))["generateDaysCode"]
    assert days["codeType"] == "DAYSCODE" and codes.matches(days["codeHex"], days["codeDec"])
    combined = data(await gql(client, DOC_SIGN_IN_AND_DAYS, token))
    assert combined["signInUser"]["type"] == combined["signInUser"]["roleName"] == "DISTRIBUTOR"
    assert combined["generateDaysCode"]["codeType"] == "DAYSCODE"
    assert erm_sandbox.device("SBX00000000002").codes[0].hex == combined["generateDaysCode"]["codeHex"]
    signed_only = (await gql(client, DOC_SIGN_IN_AND_DAYS)).json()  # no token: the sign-in alone goes through
    assert signed_only["data"]["signInUser"]["accessToken"] and signed_only["data"]["generateDaysCode"] is None
    assert signed_only["errors"][0]["extensions"] == UNAUTHORIZED["errors"][0]["extensions"]  # type: ignore[index]

    clock.advance(6)
    free = data(await gql(client, DOC_FREE, token, itemId="SELLER2503000042"))["generateFreeCode"]
    assert data(await gql(client, DOC_FREE_INLINE, token))["generateFreeCode"]["codeType"] == "FREECODE"
    clock.advance(6)
    reset = data(await gql(client, DOC_RESET, token, itemId="TEST2503000017"))["generateResetCode"]
    assert refusal(await gql(client, DOC_FREE, token, itemId="TEST2503000017"), "generateFreeCode")  # 6 s
    assert (free["codeType"], reset["codeType"]) == ("FREECODE", "RESETCODE")

    for query in (doc_history_query(EXAMPLE_ID), DOC_HISTORY_ANSWER):
        found = data(await gql(client, query, token))["getItemsForDownloadById"]
        assert found[0]["item"] == {"_id": EXAMPLE_ID, "oemID": "OVES", "oemItemID": "TEST2503000017"}
        assert [(e["codeType"], e["codeNumber"]) for e in found[0]["codeHistory"]] == [
            ("RESETCODE", 3), ("FREECODE", 2), ("DAYSCODE", 1),
        ]
    node = data(await gql(client, DOC_SEARCH % "01AH2307000009", token))["getAllClientItems"]["page"]["edges"][0]
    assert node["node"]["_id"] == erm_sandbox.device("01AH2307000009").erm_id
    assert erm_sandbox.logins == 4 and erm_sandbox.generations == 7
